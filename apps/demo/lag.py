"""Consumer lag of each stage (records on its input topic not yet committed by its group), sampled while
the demo runs so the summary can show the peak — where the 50x burst queued up."""

from __future__ import annotations

import contextlib

from confluent_kafka import Consumer, KafkaException, TopicPartition

from schemas.topics import Topic, physical_name
from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config


def stage_groups(settings: Settings) -> dict[str, tuple[str, Topic]]:
    """Stage -> (its consumer group, the topic it consumes)."""
    prefix = settings.kafka.topic_prefix
    request_path = (prefix + settings.streams.group_id, Topic.REQUESTS)
    front: dict[str, tuple[str, Topic]] = (
        {"request path + dispatch (fused)": request_path} if settings.streams.deployment == "fused" else
        {"request path": request_path, "dispatch": (prefix + settings.dispatch.group_id, Topic.ROUTED)})
    return {**front, "aggregation": (prefix + settings.aggregation.group_id, Topic.TELEMETRY),
            "lakehouse (responses)": (prefix + settings.lakehouse.group_id, Topic.RESPONSES)}


class LagProbe:
    def __init__(self, settings: Settings) -> None:
        prefix = settings.kafka.topic_prefix
        self.consumers: dict[str, tuple[Consumer, list[TopicPartition]]] = {}
        for stage, (group, topic) in stage_groups(settings).items():
            consumer = Consumer(consumer_config(settings, group_id=group, role="admin"))
            name = physical_name(topic, prefix)
            parts = consumer.list_topics(name, timeout=10).topics[name].partitions
            self.consumers[stage] = (consumer, [TopicPartition(name, p) for p in parts])
        self.peak: dict[str, int] = dict.fromkeys(self.consumers, 0)

    def sample(self) -> dict[str, int]:
        """Current lag per stage (a stage whose group has not committed yet counts from the log start)."""
        now = {}
        for stage, (consumer, parts) in self.consumers.items():
            with contextlib.suppress(KafkaException):  # the broker may be away for a moment
                lag = 0
                for tp in consumer.committed(parts, timeout=5):
                    low, high = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
                    lag += max(0, high - (tp.offset if tp.offset >= 0 else low))
                now[stage] = lag
                self.peak[stage] = max(self.peak[stage], lag)
        return now

    def close(self) -> None:
        for consumer, _ in self.consumers.values():
            consumer.close()
