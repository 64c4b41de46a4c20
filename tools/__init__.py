"""Benchmark harnesses that drive a browser, a websocket or a GPU: outside the installed `lab` package."""
