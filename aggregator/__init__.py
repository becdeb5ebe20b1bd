"""clusterfeeds: one feed and one calendar for European cluster networks."""

__version__ = "0.1.0"
USER_AGENT = f"clusterfeeds/{__version__} (+https://github.com/clusterfeeds/clusterfeeds; feed aggregator)"

__all__ = ["USER_AGENT", "__version__"]
