"""A stand-in shipping process for the supervisor's tests: speaks the protocol, ships nothing.

    python stand_in_worker.py --fd N

Answers each Ship with a Progress whose ``read_generation`` is its own pid (so a
test can tell processes apart), each closed log in a Grew with a Finished, and
exits 0 on Stop. Container IDs ask for misbehaviour: ``die`` exits 3 at once,
``hang`` stops reading its socket, ``deaf`` ignores Stop.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time

from pylog.shipper import ipc
from pylog.store.reader import Position


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    sock = socket.socket(fileno=parser.parse_args().fd)
    hello = ipc.read_message(sock)
    assert isinstance(hello, ipc.Hello), hello
    deaf = False
    while (msg := ipc.read_message(sock)) is not None:
        if isinstance(msg, ipc.Ship):
            if msg.container_id == "die":
                sys.exit(3)
            if msg.container_id == "hang":
                time.sleep(3600)
            deaf = deaf or msg.container_id == "deaf"
            sock.sendall(ipc.encode(ipc.Progress(msg.container_id, Position(0, 0), os.getpid())))
        elif isinstance(msg, ipc.Grew):
            for cid, state in msg.states.items():
                if state.closed:
                    sock.sendall(ipc.encode(ipc.Finished(cid)))
        elif isinstance(msg, ipc.Stop) and not deaf:
            sys.exit(0)
    if deaf:
        time.sleep(3600)


if __name__ == "__main__":
    main()
