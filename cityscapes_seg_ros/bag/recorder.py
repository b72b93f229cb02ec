"""``evaluate --record``: the node's output topics written into an MCAP bag, for rviz or Foxglove later."""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import List, Optional

from ..harness.ros import publisher_is_reliable, reliable_qos, wait_until
from .bagio import BagError, message_class, typestore
from .writing import new_writer

log = logging.getLogger(__name__)


def find_message_definition(msgtype: str) -> Optional[str]:
    """The .msg text of an installed ROS message type: <prefix>/share/<pkg>/msg/<Name>.msg."""
    package, _, name = msgtype.split("/")
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    try:  # the generated Python lives in <prefix>/lib/pythonX.Y/site-packages/<pkg>/msg/
        module_file = Path(importlib.import_module(f"{package}.msg").__file__)
        prefixes.append(str(module_file.parents[5]))
    except (ImportError, IndexError, TypeError):
        pass
    for prefix in prefixes:
        path = Path(prefix) / "share" / package / "msg" / f"{name}.msg"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return None


def ensure_type(store, msgtype: str) -> bool:
    """Make the typestore know ``msgtype`` (custom messages from their .msg file); False if impossible."""
    if msgtype in store.types:
        return True
    from rosbags.typesys import get_types_from_msg

    text = find_message_definition(msgtype)
    if text is None:
        return False
    store.register(get_types_from_msg(text, msgtype))
    return True


class OutputRecorder:
    """Subscribes (raw) to every topic below ``prefix`` and writes what arrives, stamped on receipt."""

    def __init__(self, node, prefix: str, out: Path, discovery_sec: float = 5.0) -> None:
        self.node, self.lock, self.closed = node, threading.Lock(), False
        out = Path(out)
        if out.exists():
            raise BagError(f"{out} already exists: choose another --record bag")
        wait_until(lambda: bool(self.topics(prefix)), discovery_sec, poll_sec=0.1)
        topics = self.topics(prefix)
        if not topics:
            raise BagError(f"no topic below {prefix} to record")
        self.store = typestore()
        out.parent.mkdir(parents=True, exist_ok=True)
        self.writer = new_writer(out, "mcap")
        self.writer.open()
        self.subscriptions, self.recorded = [], []
        for topic, msgtype in topics:
            if not ensure_type(self.store, msgtype):
                log.warning("not recording %s: no message definition found for %s", topic, msgtype)
                continue
            connection = self.writer.add_connection(topic, msgtype, typestore=self.store)
            qos = reliable_qos(100, publisher_is_reliable(node, topic))
            callback = self.writer_callback(connection)
            self.subscriptions.append(node.create_subscription(message_class(msgtype), topic, callback, qos, raw=True))
            self.recorded.append(topic)
        log.info("recording %s into %s", ", ".join(self.recorded), out)

    def topics(self, prefix: str) -> List[tuple]:
        return [(name, types[0]) for name, types in self.node.get_topic_names_and_types() if name.startswith(prefix)]

    def writer_callback(self, connection):
        def write(data: bytes) -> None:
            with self.lock:
                if not self.closed:
                    self.writer.write(connection, time.time_ns(), data)

        return write

    def close(self) -> None:
        for subscription in self.subscriptions:
            self.node.destroy_subscription(subscription)
        with self.lock:
            self.closed = True
            self.writer.close()
