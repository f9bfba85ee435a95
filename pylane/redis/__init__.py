"""Lanes across machines, on Redis 7: the lane rules run inside Redis as one
Lua function library (``lanes.lua``, shipped with the package)."""
