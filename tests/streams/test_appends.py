"""Appends under concurrency: group commit keeps every append, in one total order."""

from __future__ import annotations

import asyncio

import httpx


async def test_concurrent_appends_all_land_with_distinct_offsets(
    streams: httpx.AsyncClient, stream_path: str
) -> None:
    """64 concurrent appends each get their own offset, and a read returns all of them."""
    await streams.put(stream_path, headers={"Content-Type": "application/json"})

    async def one(n: int) -> str:
        response = await streams.post(stream_path, json={"n": n},
                                      headers={"Content-Type": "application/json"})
        assert response.status_code == 204
        return response.headers["stream-next-offset"]

    offsets = await asyncio.gather(*(one(n) for n in range(64)))
    assert len(set(offsets)) == 64
    body = (await streams.get(stream_path)).json()
    assert sorted(m["n"] for m in body) == list(range(64))
    # The order of the stream is the order of the offsets the appends were given.
    by_offset = [n for _offset, n in sorted(zip(offsets, range(64), strict=True))]
    assert [m["n"] for m in body] == by_offset


async def test_one_bad_append_does_not_fail_its_neighbours(
    streams: httpx.AsyncClient, stream_path: str
) -> None:
    """A rejected append (Stream-Seq regression) in a concurrent burst leaves the others stored."""
    await streams.put(stream_path, headers={"Content-Type": "text/plain"})
    first = await streams.post(stream_path, content=b"a",
                               headers={"Content-Type": "text/plain", "Stream-Seq": "5"})
    assert first.status_code == 204
    results = await asyncio.gather(
        streams.post(stream_path, content=b"b", headers={"Content-Type": "text/plain"}),
        streams.post(stream_path, content=b"x",
                     headers={"Content-Type": "text/plain", "Stream-Seq": "1"}),
        streams.post(stream_path, content=b"c", headers={"Content-Type": "text/plain"}),
    )
    assert [r.status_code for r in results] == [204, 409, 204]
    assert results[1].headers["content-type"] == "application/problem+json"
    assert sorted((await streams.get(stream_path)).content.decode()) == ["a", "b", "c"]
