"""docs/api.md must not drift from the code: every type, field and error code is documented."""

from pathlib import Path

from meshd import state as st
from meshd.api import ApiError, MsgType, request_types

API_MD = (Path(__file__).parents[2] / "docs" / "api.md").read_text()


def test_every_message_type_and_request_field_is_documented():
    for msg_type in MsgType:
        assert msg_type.name.removeprefix("EVENT_") in API_MD, msg_type
    for msg_type, cls in request_types().items():
        row = next(line for line in API_MD.splitlines() if line.startswith(f"| {msg_type} | {MsgType(msg_type).name}"))
        for name in cls.__struct_fields__:
            if name != "request_id":
                assert f"`{name}`" in row, (cls.__name__, name)


def test_every_error_code_is_documented():
    for code in ApiError:
        assert f"| {int(code)} | {code.name} |" in API_MD, code
    for code in st.ErrorCode:
        assert f"{1000 + int(code)} {code.name}" in API_MD.replace("\n", " "), code
