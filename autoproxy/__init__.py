"""autoproxy: discover zero-cost NAS proxies by typed genetic programming."""

__version__ = "0.1.0"
