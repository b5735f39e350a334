"""autoproxy: discover zero-cost NAS proxies by typed genetic programming."""

__version__ = "0.1.0"

_API = ("score", "list_proxies", "load_proxy")
__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    """``autoproxy.score`` and friends, imported on first use so that ``import autoproxy`` stays light."""
    if name in _API:
        from autoproxy import api

        return getattr(api, name)
    raise AttributeError(f"module 'autoproxy' has no attribute {name!r}")
