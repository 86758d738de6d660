"""Drive a server with wrk (Debian's ``wrk``) and distinct signed requests: the load generator
issue 15 §7 names ("wrk, 16 connections, distinct signed bodies").

wrk sends for a fixed duration, so each run is given more distinct requests than it can send
(``requests``); each wrk thread sends its own slice of them (every ``threads``-th line), in
order, so no body is ever sent twice. Should a thread run out, it stops instead of repeating
a body, and the run says so. A request is one line of the file wrk's Lua script reads: the
body, the signature header and the delivery id, tab-separated (bodies are JSON without tabs
or newlines).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

SCRIPT = r"""
-- Globals, not locals: the main state reads `statuses` and `exhausted` from each thread.
lines, index, statuses, exhausted = {}, 0, {}, 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file, path, count = args[1], args[2], tonumber(args[3])
  local n = 0
  for line in io.lines(file) do
    if n % count == id then
      local body, signature, delivery = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)$")
      table.insert(lines, wrk.format("POST", path, {
        ["Content-Type"] = "application/json", ["X-GitHub-Event"] = "pull_request",
        ["X-GitHub-Delivery"] = delivery, ["User-Agent"] = "GitHub-Hookshot/bench",
        ["X-Hub-Signature-256"] = signature}, body))
    end
    n = n + 1
  end
end

function request()
  index = index + 1
  if index > #lines then
    exhausted = 1
    wrk.thread:stop()
    return lines[#lines]
  end
  return lines[index]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  local out_of_bodies = 0
  for _, thread in ipairs(threads) do
    local seen = thread:get("statuses")
    for status, count in pairs(seen) do counts[status] = (counts[status] or 0) + count end
    out_of_bodies = out_of_bodies + thread:get("exhausted")
  end
  local parts = {}
  for status, count in pairs(counts) do table.insert(parts, string.format('"%d": %d', status, count)) end
  io.write(string.format('WRK-RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"errors": %d, "exhausted": %d, "statuses": {%s}}\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    out_of_bodies, table.concat(parts, ", ")))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def run(port: int, path: str, requests: list[tuple[bytes, dict[str, str]]], *, connections: int, seconds: float,
        threads: int = 2) -> dict[str, Any]:
    """wrk against ``127.0.0.1:port`` for ``seconds``; rate, p50/p99 (ms) and status counts."""
    with tempfile.TemporaryDirectory(prefix="synthorg-wrk-") as folder:
        lines = Path(folder, "requests.tsv")
        with lines.open("w") as out:
            for body, headers in requests:
                text = body.decode()
                if "\t" in text or "\n" in text:
                    raise ValueError("bodies must hold no tab or newline")
                out.write(f"{text}\t{headers['X-Hub-Signature-256']}\t{headers['X-GitHub-Delivery']}\n")
        script = Path(folder, "signed.lua")
        script.write_text(SCRIPT)
        command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
                   "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}{path}",
                   "--", str(lines), path, str(threads)]
        finished = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    match = re.search(r"^WRK-RESULT (.*)$", finished.stdout, re.MULTILINE)
    if finished.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({finished.returncode}): {finished.stdout[-500:]} {finished.stderr[-500:]}")
    result = json.loads(match.group(1))
    if result["exhausted"]:
        raise RuntimeError(f"wrk ran out of distinct requests ({len(requests)}): give it more")
    return {"rate": result["requests"] / (result["duration_us"] / 1e6), "p50": result["p50_us"] / 1000,
            "p99": result["p99_us"] / 1000, "statuses": {int(k): v for k, v in result["statuses"].items()},
            "errors": result["errors"], "requests": result["requests"]}
