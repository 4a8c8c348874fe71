"""Provider adapters, one module per API, behind `Provider`; `build_provider` picks one from config."""

from gateway_consumer.providers.anthropic import Anthropic
from gateway_consumer.providers.base import Provider, ProviderCall, ProviderError, ProviderReply
from gateway_consumer.providers.openai_compat import OpenAICompatible
from streamgate.config import ProviderSettings

__all__ = ["Provider", "ProviderCall", "ProviderError", "ProviderReply", "build_provider"]


def build_provider(settings: ProviderSettings) -> Provider:
    key = settings.api_key.get_secret_value() if settings.api_key else None
    if settings.kind == "anthropic":
        return Anthropic(settings.base_url, key)
    return OpenAICompatible(settings.base_url, key)
