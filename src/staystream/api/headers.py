"""Request headers of staystream's own, shared by the server and the clients that send them."""

BULK_HEADER = "x-staystream-bulk"  # set by importers: their writes yield to live traffic in the writer


def is_bulk(value: str) -> bool:
    return value not in ("", "0", "false")
