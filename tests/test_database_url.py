from common.database_url import is_postgres, redacted


def test_a_url_names_postgres_and_a_path_names_sqlite() -> None:
    assert is_postgres("postgresql://lienthong@127.0.0.1:5432/gateway")
    assert is_postgres("postgres://127.0.0.1/x")
    assert not is_postgres("data/gateway.sqlite3")
    assert not is_postgres(":memory:")


def test_a_password_is_never_shown() -> None:
    assert redacted("postgresql://app:s3cret@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert redacted("postgresql://app@db/x") == "postgresql://app@db/x"
    assert redacted("data/gateway.sqlite3") == "data/gateway.sqlite3"
