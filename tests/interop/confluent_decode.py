"""Reads a topic from the beginning with Confluent's own Python client and
AvroDeserializer (schema looked up in the registry by the id in each
record), the way an analyst would, and prints each value as a JSON line.

usage: confluent_decode.py BOOTSTRAP REGISTRY_URL TOPIC COUNT
Exits 1 when a record does not decode or COUNT records do not arrive in 60 s.
"""

import base64
import json
import sys
import time

from confluent_kafka import DeserializingConsumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer


def plain(value):
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def main():
    bootstrap, registry, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    registry_client = SchemaRegistryClient({"url": registry})
    consumer = DeserializingConsumer({
        "bootstrap.servers": bootstrap,
        "broker.address.family": "v4",
        "group.id": "intops-interop-reader",
        "enable.auto.commit": False,
        "value.deserializer": AvroDeserializer(registry_client),
    })
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = metadata.topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    seen = 0
    deadline = time.time() + 60
    while seen < count:
        if time.time() > deadline:
            print(f"only {seen} of {count} records arrived from {topic}", file=sys.stderr)
            return 1
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            print(f"consumer error: {message.error()}", file=sys.stderr)
            return 1
        print(json.dumps({"key": message.key().decode(), "value": plain(message.value())}))
        seen += 1
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
