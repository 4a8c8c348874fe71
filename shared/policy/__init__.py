"""The gateway policy (config/gateway.yaml): its model, the live holder that follows the `config` topic,
and publishing. The request path decides by it; the dispatcher, aggregator and features read it."""
