"""mm review bot: reviews linux-mm patch series revision by revision."""

__version__ = "0.1.0"
