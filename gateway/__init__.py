"""Streaming Gateway: signed HLS playback proxied from S3 bucket-processed."""
