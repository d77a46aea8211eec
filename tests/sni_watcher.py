"""A StatusNotifier watcher and host, as KDE Plasma and GNOME's AppIndicator extension run one,
for the tray tests: `python3 tests/sni_watcher.py` on a session bus owns
org.kde.StatusNotifierWatcher, and prints each item that registers ("service path"), one a
line, so that a test can find the icon and its menu on the bus.
"""

import asyncio
import sys

from dbus_fast import BusType, Message
from dbus_fast.aio import MessageBus
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property, method, signal

WATCHER = "org.kde.StatusNotifierWatcher"


class Watcher(ServiceInterface):
    def __init__(self) -> None:
        super().__init__(WATCHER)
        self.items: list[str] = []
        self.sender = ""  # who is calling RegisterStatusNotifierItem (see note_sender)

    @method()
    def RegisterStatusNotifierItem(self, service: "s") -> None:  # noqa: F821
        # An item gives its object path (libayatana) or its bus name; the sender is who called.
        path = service if service.startswith("/") else "/StatusNotifierItem"
        name = self.sender if service.startswith("/") else service
        entry = f"{name}{path}"
        self.items.append(entry)
        print(name, path, flush=True)
        self.StatusNotifierItemRegistered(entry)

    @method()
    def RegisterStatusNotifierHost(self, service: "s") -> None:  # noqa: F821
        pass

    @dbus_property(access=PropertyAccess.READ)
    def RegisteredStatusNotifierItems(self) -> "as":  # noqa: F722
        return self.items

    @dbus_property(access=PropertyAccess.READ)
    def IsStatusNotifierHostRegistered(self) -> "b":  # noqa: F821
        return True

    @dbus_property(access=PropertyAccess.READ)
    def ProtocolVersion(self) -> "i":  # noqa: F821
        return 0

    @signal()
    def StatusNotifierItemRegistered(self, entry: str) -> "s":  # noqa: F821
        return entry

    @signal()
    def StatusNotifierHostRegistered(self) -> None:
        return None


async def main() -> None:
    bus = await MessageBus(bus_type=BusType.SESSION).connect()
    watcher = Watcher()

    def note_sender(message: Message) -> None:
        """Runs before the method: dbus-fast does not hand the caller to it."""
        if message.member == "RegisterStatusNotifierItem":
            watcher.sender = message.sender or ""

    bus.add_message_handler(note_sender)
    bus.export("/StatusNotifierWatcher", watcher)
    await bus.request_name(WATCHER)
    print("ready", flush=True)
    await bus.wait_for_disconnect()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
