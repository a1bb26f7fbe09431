"""Text statistics: plain text in, plain text out, no dependencies beyond the standard library."""

import re
from collections import Counter

WORD = re.compile(r"[a-z0-9']+")


class PythonPredictor:
    def __init__(self, config):
        self.top = int(config.get("top", 3))

    def predict(self, payload):
        # `Content-Type: text/plain` (what `cortexlite predict` sends for a text file) gives a str;
        # a client that sends application/octet-stream gives bytes.
        text = payload.decode("utf-8") if isinstance(payload, bytes) else str(payload)
        words = WORD.findall(text.lower())
        ranked = sorted(Counter(words).items(), key=lambda item: (-item[1], item[0]))[: self.top]
        top = ", ".join(f"{word} ({count})" for word, count in ranked)
        # A str answer is sent as text/plain; charset=utf-8.
        return f"lines: {len(text.splitlines())}\nwords: {len(words)}\ncharacters: {len(text)}\ntop words: {top}\n"
