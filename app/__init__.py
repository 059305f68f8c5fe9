"""Two-way referral routing service for medical consortia."""

__version__ = "0.1.0"
