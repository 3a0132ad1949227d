"""Upload Service: a TUS 1.0 server streaming uploads into S3 bucket-raw."""
