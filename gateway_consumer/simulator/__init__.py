"""A provider simulator: OpenAI-compatible (and Anthropic Messages) HTTP with configurable behaviour."""

from gateway_consumer.simulator.control import SimulatorProcess
from gateway_consumer.simulator.profiles import Profile, load_profiles
from gateway_consumer.simulator.server import create_app, serve

__all__ = ["Profile", "SimulatorProcess", "create_app", "load_profiles", "serve"]
