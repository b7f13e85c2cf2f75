"""Context lookups from a file or a SQL table: validated rows, joins on a record field, clear errors."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from orchestration_assets.core.lookups import ContextLookupError, join, read_lookup
from orchestration_assets.spec_inputs import LookupSpec

ORDERS = {"order_id": {"required": True}, "amount_paid": {"type": "number", "required": True, "min": 0},
          "status": {"values": ["shipped", "refunded"]}}


def sqlite_orders(tmp_path, rows: list[dict]) -> str:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = sa.create_engine(url)
    pd.DataFrame(rows).to_sql("orders", engine, index=False)
    engine.dispose()
    return url


def test_a_sql_lookup_is_read_by_url_from_the_environment_typed_and_joined(tmp_path, monkeypatch):
    url = sqlite_orders(tmp_path, [{"order_id": "O-1", "amount_paid": "19.90", "status": "shipped"},
                                   {"order_id": "O-2", "amount_paid": "5", "status": "refunded"}])
    monkeypatch.setenv("SHOP_DB_URL", url)
    spec = LookupSpec.model_validate({"sql": {"url_env": "SHOP_DB_URL", "table": "orders"}, "key": "order_id",
                                      "join_on": "order_ref", "columns": ORDERS})
    table = read_lookup("orders", spec, tmp_path)
    assert table["amount_paid"].tolist() == [19.9, 5.0]
    records = pd.DataFrame({"record_id": ["R-1", "R-2", "R-3"], "order_ref": ["O-2", "O-9", None]})
    joined = join(records, records["order_ref"], "order", spec, table)
    assert joined["order__status"].tolist() == ["refunded", None, None]
    assert joined["order__amount_paid"].iloc[0] == 5.0 and pd.isna(joined["order__amount_paid"].iloc[1])


def test_a_missing_url_variable_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOP_DB_URL", raising=False)
    spec = LookupSpec.model_validate({"sql": {"url_env": "SHOP_DB_URL", "table": "orders"}, "key": "order_id",
                                      "columns": ORDERS})
    with pytest.raises(ContextLookupError, match="context.orders.sql.url_env: environment variable SHOP_DB_URL is not set"):
        read_lookup("orders", spec, tmp_path)


def test_an_unreachable_database_is_named_with_its_password_hidden(tmp_path):
    spec = LookupSpec.model_validate({"sql": {"url": "sqlite:////nonexistent/folder/x.db", "table": "orders"},
                                      "key": "order_id", "columns": ORDERS})
    with pytest.raises(ContextLookupError, match="context.orders: cannot read from sqlite:////nonexistent"):
        read_lookup("orders", spec, tmp_path)


def test_bad_rows_fail_the_lookup_naming_source_row_and_column(tmp_path):
    (tmp_path / "orders.csv").write_text("order_id,amount_paid,status\nO-1,-3,shipped\nO-1,4,lost\n,2,shipped\n")
    spec = LookupSpec.model_validate({"file": "orders.csv", "key": "order_id", "columns": ORDERS})
    with pytest.raises(ContextLookupError) as err:
        read_lookup("orders", spec, tmp_path)
    text = str(err.value)
    assert "orders.csv, row 1, column 'amount_paid': -3.0 is below the minimum 0" in text
    assert "orders.csv, row 2, column 'status': 'lost' is not one of shipped, refunded" in text
    assert "orders.csv, row 3, column 'order_id': required value is missing" in text
    assert "duplicate order_id value(s) ['O-1']" in text
