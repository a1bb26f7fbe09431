import asyncio
import threading


class PythonPredictor:
    """Predictors may drive their own event loop (an async client, say), wherever predict runs."""

    def predict(self, payload):
        async def work():
            await asyncio.sleep(0)
            return payload * 2

        return {"value": asyncio.run(work()), "thread": threading.current_thread().name}
