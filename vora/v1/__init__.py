"""Generated from proto/vora/v1 by scripts/gen-proto. Never edit the *_pb2* files by hand."""
