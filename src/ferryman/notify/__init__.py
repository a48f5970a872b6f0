"""Notifications: what happened (an event) rendered as a message in the channel's language, and
the channels that carry it. Delivery is a job (``dispatcher``): retried with backoff, every
attempt recorded; a failing channel never fails or slows a deploy."""
