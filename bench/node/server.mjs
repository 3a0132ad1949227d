// The reference for bench/upload.py: the official Node TUS server storing into the same S3.
// Configured from the environment by the benchmark (port, endpoint, bucket, credentials).
import http from "node:http";
import { Server } from "@tus/server";
import { S3Store } from "@tus/s3-store";

const env = process.env;
const store = new S3Store({
  partSize: Number(env.PART_BYTES),
  s3ClientConfig: {
    bucket: env.BUCKET,
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: env.S3_ACCESS_KEY, secretAccessKey: env.S3_SECRET_KEY },
  },
});
const tus = new Server({ path: "/files", datastore: store, maxSize: Number(env.MAX_SIZE) });
const server = http.createServer((req, res) => tus.handle(req, res));
server.listen(Number(env.PORT), "127.0.0.1", () => console.log(`listening on ${env.PORT}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
