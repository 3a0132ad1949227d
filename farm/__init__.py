"""Transcoding Worker: NVML GPU discovery, FFmpeg (NVENC, else libx264) into the HLS ladder."""
