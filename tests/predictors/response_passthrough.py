from starlette.responses import PlainTextResponse, StreamingResponse


class PythonPredictor:
    def predict(self, payload, query_params):
        if query_params.get("stream"):
            return StreamingResponse(iter([b"a", b"b", b"c"]), media_type="text/csv", status_code=202)
        return PlainTextResponse("created", status_code=201, headers={"x-custom": "yes"})
