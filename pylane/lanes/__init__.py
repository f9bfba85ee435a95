"""What a lane can be configured with besides its priority and concurrency:
retry policy, rate limit and deadline boost (``LaneConfig`` lives in
``pylane.config``)."""

from .boost import PriorityBoostConfig
from .rate_limit import RateLimitConfig
from .retry import RetryPolicy

__all__ = ["PriorityBoostConfig", "RateLimitConfig", "RetryPolicy"]
