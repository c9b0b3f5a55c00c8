"""Scaled mode: the NATS JetStream stream, the writer's scaled roles, and the applier."""
