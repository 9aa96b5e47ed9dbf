"""Keys, regions and the fast retry policy shared by the ECS tests."""

from __future__ import annotations

from alicloud.retry import BackoffPolicy

KEY_ID = "LTAI5tLocalTestKey01"
SECRET = "local-test-secret-5f2a9c"
REGIONS = ("cn-hangzhou", "cn-beijing", "ap-southeast-1")
# Fast backoff keeps retry tests quick while still exercising real sleeps.
FAST = BackoffPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
