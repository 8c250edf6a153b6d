import pytest

from triune_data.sources import base


@pytest.fixture(params=["parsed", "streamed"])
def json_reader(request, monkeypatch) -> str:
    """Run a test twice: JSON files parsed whole, and streamed (as files over the size limit are).

    Modules of one-document JSON formats use it for every test (`pytestmark`); a test that takes
    it as an argument can expect what differs (NaN and lone surrogates refuse a streamed file).
    """
    if request.param == "streamed":
        monkeypatch.setattr(base, "STREAM_ABOVE_BYTES", -1)
    return request.param
