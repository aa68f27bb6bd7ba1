"""Award delivery: the live stream (broker) and the webhook/email sinks."""
