"""The traffic log schema (v1): column names, types and which are required."""

from __future__ import annotations

#: Required columns and their logical types.
REQUIRED: dict[str, str] = {
    "request_id": "string",
    "timestamp": "timestamp",
    "account_id": "string",
    "prompt": "string",
}

#: Optional columns and their logical types (used when present).
OPTIONAL: dict[str, str] = {
    "org_id": "string",
    "api_key_id": "string",
    "account_created_at": "timestamp",
    "signup_path": "string",
    "payment_fingerprint": "string",
    "client_ip": "string",
    "asn": "int",
    "asn_type": "string",
    "country": "string",
    "user_agent": "string",
    "tls_fingerprint": "string",
    "model": "string",
    "system_prompt": "string",
    "response": "string",
    "input_tokens": "int",
    "output_tokens": "int",
    "reasoning_tokens": "int",
    "temperature": "float",
    "max_tokens": "int",
    "status": "string",
}

#: Ground truth; never read by any detector (dropped at ingestion by the scan).
EVALUATION_ONLY = ("campaign_id",)

#: Columns the scan never reads even when present (large text not needed for detection).
NOT_READ = ("response", "system_prompt")

ALL: dict[str, str] = {**REQUIRED, **OPTIONAL}
