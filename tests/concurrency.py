"""Fire the same request from many threads at once, each with its own client and database connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connection
from rest_framework.test import APIClient

T = TypeVar("T")


def at_once(workers: int, token: str, send: Callable[[APIClient], T]) -> list[T]:
    """Run ``send(client)`` in ``workers`` threads released together by a barrier; return the answers."""
    barrier = threading.Barrier(workers)
    answers: list[T] = []
    lock = threading.Lock()

    def run() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        barrier.wait()
        try:
            answer = send(client)
            with lock:
                answers.append(answer)
        finally:
            connection.close()  # each thread has its own connection; give it back

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers
