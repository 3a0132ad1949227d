"""The OpenAPI 3.1 description of the REST facade, served at /openapi.json.

Kept beside the handlers and checked against them by tests/control (schemathesis):
every response the server can give is documented with its schema.
"""

from __future__ import annotations

from typing import Any

from control.capacity_openapi import farm_paths, farm_schemas
from control.videos import MAX_DESCRIPTION, MAX_PAGE_SIZE, MAX_PLAYBACK_TTL_SECONDS, MAX_TITLE

_ERROR_REF = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR_REF}}}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_UNAVAILABLE = {
    **_error("The database is unreachable; retry after the given seconds."),
    "headers": {"Retry-After": {"schema": {"type": "string"}}},
}
_COMMON_ERRORS = {
    "400": _error("The request is malformed; the message names the field."),
    "401": _error("Missing or invalid bearer token."),
    "403": _error("The credentials may not make this call (e.g. a service token)."),
    "503": _UNAVAILABLE,
}
_NOT_FOUND = {"404": _error("No such video for this caller.")}
_CONFLICT = {"409": _error("The video's state does not allow this (the message says why).")}

_VIDEO_ID_PARAM = {
    "name": "video_id", "in": "path", "required": True,
    "schema": {"type": "string", "format": "uuid"},
}


# Where a created video's id leads (clients and schemathesis's stateful phase follow them).
_VIDEO_LINKS = {
    name: {"operationId": name, "parameters": {"video_id": "$response.body#/video/id"}}
    for name in ("GetVideo", "DeleteVideo", "CompleteUpload", "RetryProcessing",
                 "GetPlaybackUrl")
}


def _video_schema() -> dict[str, Any]:
    rendition = {
        "type": "object",
        "properties": {
            "name": {"type": "string"}, "width": {"type": "integer"},
            "height": {"type": "integer"}, "bandwidth": {"type": "integer"},
            "average_bandwidth": {"type": "integer"}, "codecs": {"type": "string"},
            "frame_rate": {"type": "number"}, "playlist_key": {"type": "string"},
        },
    }
    return {
        "type": "object",
        "required": ["id", "owner", "title", "description", "state", "failure_reason",
                     "progress", "renditions", "duration_seconds", "manifest_key",
                     "thumbnail_key", "upload_id", "create_time", "update_time"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "format": "uuid", "readOnly": True},
            "owner": {"type": "string", "readOnly": True},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "state": {"type": "string", "enum": ["CREATED", "PROCESSING", "READY", "FAILED"],
                      "readOnly": True},
            "failure_reason": {"type": "string"},
            "progress": {
                "type": "object", "required": ["phase", "percent"],
                "properties": {"phase": {"type": "string"},
                               "percent": {"type": "number", "minimum": 0, "maximum": 100}},
            },
            "renditions": {"type": "array", "items": rendition},
            "duration_seconds": {"type": "number"},
            "manifest_key": {"type": "string"},
            "thumbnail_key": {"type": "string"},
            "upload_id": {"type": "string"},
            "create_time": {"type": "string", "format": "date-time"},
            "update_time": {"type": "string", "format": "date-time"},
        },
    }


def _schemas() -> dict[str, Any]:
    video_ref = {"$ref": "#/components/schemas/Video"}
    return {
        "Video": _video_schema(),
        "Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {
                "type": "object", "required": ["code", "status", "message"],
                "properties": {"code": {"type": "string"}, "status": {"type": "integer"},
                               "message": {"type": "string"}},
            }},
        },
        "CreateVideoRequest": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "title": {"type": "string", "maxLength": MAX_TITLE},
                "description": {"type": "string", "maxLength": MAX_DESCRIPTION},
                "size_bytes": {"type": "integer", "minimum": 0,
                               "description": "Expected upload size; 0 means the maximum."},
            },
        },
        "CreateVideoResponse": {
            "type": "object",
            "required": ["video", "upload_url", "upload_token", "upload_token_expire_time"],
            "properties": {"video": video_ref, "upload_url": {"type": "string"},
                           "upload_token": {"type": "string"},
                           "upload_token_expire_time": {"type": "string",
                                                        "format": "date-time"}},
        },
        "VideoResponse": {"type": "object", "required": ["video"],
                          "properties": {"video": video_ref}},
        "ListVideosResponse": {
            "type": "object", "required": ["videos", "next_page_token"],
            "properties": {"videos": {"type": "array", "items": video_ref},
                           "next_page_token": {"type": "string"}},
        },
        "CompleteUploadRequest": {
            "type": "object", "required": ["upload_id"], "additionalProperties": False,
            "properties": {"upload_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"}},
        },
        "PlaybackUrlResponse": {
            "type": "object", "required": ["url", "token", "expire_time"],
            "properties": {"url": {"type": "string"}, "token": {"type": "string"},
                           "expire_time": {"type": "string", "format": "date-time"}},
        },
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _paths() -> dict[str, Any]:
    video = _ref("VideoResponse")
    return {
        "/v1/videos": {
            "post": {
                "operationId": "CreateVideo", "summary": "Create a video in CREATED",
                "requestBody": {"required": False, "content": {
                    "application/json": {"schema": _ref("CreateVideoRequest")}}},
                "responses": {"201": {**_ok("Created", _ref("CreateVideoResponse")),
                                      "headers": {"Location": {"schema": {"type": "string"}}},
                                      "links": _VIDEO_LINKS},
                              **_COMMON_ERRORS},
            },
            "get": {
                "operationId": "ListVideos", "summary": "The caller's videos, newest first",
                "parameters": [
                    {"name": "page_size", "in": "query",
                     "schema": {"type": "integer", "minimum": 0, "maximum": MAX_PAGE_SIZE}},
                    {"name": "page_token", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": _ok("A page", _ref("ListVideosResponse")),
                              **_COMMON_ERRORS},
            },
        },
        "/v1/videos/{video_id}": {
            "parameters": [_VIDEO_ID_PARAM],
            "get": {"operationId": "GetVideo", "summary": "One video with its progress",
                    "responses": {"200": _ok("The video", video), **_COMMON_ERRORS,
                                  **_NOT_FOUND}},
            "delete": {"operationId": "DeleteVideo",
                       "summary": "Hide the video now; its objects are removed in background",
                       "responses": {"204": {"description": "Deleted"}, **_COMMON_ERRORS,
                                     **_NOT_FOUND}},
        },
        "/v1/videos/{video_id}/complete-upload": {
            "parameters": [_VIDEO_ID_PARAM],
            "post": {
                "operationId": "CompleteUpload",
                "summary": "Bind a finished upload and start processing (idempotent)",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("CompleteUploadRequest")}}},
                "responses": {"200": _ok("Processing", video), **_COMMON_ERRORS,
                              **_NOT_FOUND, **_CONFLICT,
                              "412": _error("The upload has not completed at the edge.")},
            },
        },
        "/v1/videos/{video_id}/retry": {
            "parameters": [_VIDEO_ID_PARAM],
            "post": {"operationId": "RetryProcessing", "summary": "FAILED -> PROCESSING",
                     "responses": {"200": _ok("Processing again", video), **_COMMON_ERRORS,
                                   **_NOT_FOUND, **_CONFLICT}},
        },
        "/v1/videos/{video_id}/playback-url": {
            "parameters": [_VIDEO_ID_PARAM],
            "get": {
                "operationId": "GetPlaybackUrl", "summary": "A signed master playlist URL",
                "parameters": [{"name": "ttl_seconds", "in": "query", "schema": {
                    "type": "integer", "minimum": 0, "maximum": MAX_PLAYBACK_TTL_SECONDS}}],
                "responses": {"200": _ok("Signed URL", _ref("PlaybackUrlResponse")),
                              **_COMMON_ERRORS, **_NOT_FOUND, **_CONFLICT},
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Vora control", "version": "1",
                 "description": "Videos: create, upload (TUS at upload_url), complete, "
                                "follow processing, play. Same logic as vora.v1.VideoService."},
        "security": [{"bearer": []}],
        "paths": {**_paths(), **farm_paths()},
        "components": {
            "schemas": {**_schemas(), **farm_schemas()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"},
                                "serviceToken": {"type": "apiKey", "in": "header",
                                                 "name": "x-vora-service-token"}},
        },
    }
