//! PostgreSQL through `tokio-postgres`: the model's query runs in a read-only, repeatable
//! read transaction and its rows are fetched through a portal a few thousand at a time, so
//! memory stays bounded whatever the size of the result. TLS follows libpq's `sslmode` and
//! `sslrootcert` ([`super::tls`]).

use std::error::Error as StdError;

use tokio_postgres::types::{FromSql, Kind, Type};
use tokio_postgres::{IsolationLevel, NoTls};

use tokio_postgres_rustls::MakeRustlsConnect;

use super::tls::SslMode;
use super::{Cell, RowSink, Warehouse, WarehouseError};
use crate::mapping::Model;

/// Rows fetched per round trip.
const FETCH_ROWS: i32 = 5000;

/// PostgreSQL, with its own small runtime (the run's reader thread calls it).
pub struct Postgres {
    runtime: tokio::runtime::Runtime,
}

impl Postgres {
    pub fn new() -> std::io::Result<Postgres> {
        Ok(Postgres {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }
}

/// What a tokio-postgres error says, with the server's message when there is one.
fn detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut cur = e.source();
            while let Some(c) = cur {
                s.push_str(&format!(": {c}"));
                cur = c.source();
            }
            s
        }
    }
}

impl Warehouse for Postgres {
    fn stream(&mut self, model: &Model, sink: &mut dyn RowSink) -> Result<(), WarehouseError> {
        let connection = model.connection_name();
        let connect_error = |detail: String| WarehouseError::Connect {
            model: model.id.clone(),
            connection: connection.clone(),
            detail,
        };
        let query_error = |e: tokio_postgres::Error| WarehouseError::Query {
            model: model.id.clone(),
            detail: detail(&e),
        };
        let url = model
            .connection
            .as_ref()
            .ok_or_else(|| connect_error("no connection".into()))?;
        let (url, tls) =
            super::tls::split(url.expose()).map_err(|e| connect_error(e.to_string()))?;
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| connect_error(detail(&e)))?;
        let tls = match tls.mode {
            SslMode::Disable => None,
            _ => Some(MakeRustlsConnect::new(
                super::tls::client_config(&tls).map_err(|e| connect_error(e.to_string()))?,
            )),
        };
        self.runtime.block_on(async {
            let (mut client, conn) = match tls {
                None => {
                    let (client, conn) = config
                        .connect(NoTls)
                        .await
                        .map_err(|e| connect_error(detail(&e)))?;
                    (client, tokio::spawn(conn))
                }
                Some(tls) => {
                    let (client, conn) = config
                        .connect(tls)
                        .await
                        .map_err(|e| connect_error(detail(&e)))?;
                    (client, tokio::spawn(conn))
                }
            };
            let txn = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(query_error)?;
            let stmt = txn.prepare(&model.query).await.map_err(query_error)?;
            let names: Vec<String> = stmt
                .columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect();
            for c in stmt.columns() {
                if !supported(c.type_()) {
                    return Err(WarehouseError::UnsupportedType {
                        model: model.id.clone(),
                        column: c.name().to_string(),
                        ty: c.type_().name().to_string(),
                    });
                }
            }
            sink.columns(&names)?;
            let portal = txn.bind(&stmt, &[]).await.map_err(query_error)?;
            let mut cells: Vec<Cell> = Vec::with_capacity(names.len());
            let mut row_number = 0u64;
            loop {
                let rows = txn
                    .query_portal(&portal, FETCH_ROWS)
                    .await
                    .map_err(query_error)?;
                if rows.is_empty() {
                    break;
                }
                for row in rows {
                    row_number += 1;
                    cells.clear();
                    for (i, name) in names.iter().enumerate() {
                        let cell = row.try_get::<_, Cell>(i).map_err(|e| WarehouseError::Row {
                            model: model.id.clone(),
                            row: row_number,
                            detail: format!("column {name:?}: {}", detail(&e)),
                        })?;
                        cells.push(cell);
                    }
                    sink.row(&cells)?;
                }
            }
            txn.commit().await.map_err(query_error)?;
            drop(client);
            let _ = conn.await;
            Ok(())
        })
    }
}

fn supported_scalar(ty: &Type) -> bool {
    [
        Type::BOOL,
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::OID,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::NUMERIC,
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
        Type::UUID,
        Type::DATE,
        Type::TIMESTAMP,
        Type::TIMESTAMPTZ,
        Type::JSON,
        Type::JSONB,
    ]
    .contains(ty)
}

/// Whether a column of this type can be sent (arrays of supported types too).
pub fn supported(ty: &Type) -> bool {
    match ty.kind() {
        Kind::Array(inner) => supported_scalar(inner),
        _ => supported_scalar(ty),
    }
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Cell, BoxError> {
        if let Kind::Array(_) = ty.kind() {
            return Ok(Cell::Array(Vec::<Cell>::from_sql(ty, raw)?));
        }
        let ms = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]"
        );
        let us = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]"
        );
        Ok(match *ty {
            Type::BOOL => Cell::Bool(bool::from_sql(ty, raw)?),
            Type::INT2 => Cell::Int(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => Cell::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => Cell::Int(i64::from_sql(ty, raw)?),
            Type::OID => Cell::Int(u32::from_sql(ty, raw)?.into()),
            Type::FLOAT4 => Cell::Float32(f32::from_sql(ty, raw)?),
            Type::FLOAT8 => Cell::Float(f64::from_sql(ty, raw)?),
            Type::NUMERIC => decode_numeric(raw)?,
            Type::UUID => Cell::Text(uuid::Uuid::from_sql(ty, raw)?.hyphenated().to_string()),
            Type::DATE => {
                let d = time::Date::from_sql(ty, raw)?;
                Cell::Text(d.format(time::macros::format_description!("[year]-[month]-[day]"))?)
            }
            Type::TIMESTAMP => {
                let t = time::PrimitiveDateTime::from_sql(ty, raw)?;
                let f = if t.nanosecond() % 1_000_000 == 0 {
                    ms
                } else {
                    us
                };
                Cell::Text(t.format(f)?)
            }
            Type::TIMESTAMPTZ => {
                let t = time::OffsetDateTime::from_sql(ty, raw)?.to_offset(time::UtcOffset::UTC);
                let f = if t.nanosecond() % 1_000_000 == 0 {
                    ms
                } else {
                    us
                };
                Cell::Text(format!("{}Z", t.format(f)?))
            }
            Type::JSON | Type::JSONB => Cell::Json(serde_json::Value::from_sql(ty, raw)?),
            _ => Cell::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Cell, BoxError> {
        Ok(Cell::Null)
    }

    fn accepts(ty: &Type) -> bool {
        supported(ty)
    }
}

/// PostgreSQL's binary `numeric`: digit count, weight (of the first base-10000 digit),
/// sign, display scale, then the base-10000 digits. Written exactly, with the scale's
/// decimals; NaN and infinities (no JSON number) as NULL.
fn decode_numeric(raw: &[u8]) -> Result<Cell, BoxError> {
    let word = |i: usize| -> Result<u16, BoxError> {
        raw.get(i * 2..i * 2 + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "numeric value too short".into())
    };
    let ndigits = word(0)? as usize;
    let weight = word(1)? as i16 as i64;
    let sign = word(2)?;
    let dscale = word(3)? as usize;
    if sign == 0xC000 || sign == 0xD000 || sign == 0xF000 {
        return Ok(Cell::Null);
    }
    let digits = (0..ndigits)
        .map(|i| word(4 + i))
        .collect::<Result<Vec<u16>, _>>()?;
    let digit = |k: i64| -> u16 {
        if k < 0 {
            0
        } else {
            digits.get(k as usize).copied().unwrap_or(0)
        }
    };
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for w in (0..=weight).rev() {
            let d = digit(weight - w);
            if w == weight {
                s.push_str(&d.to_string());
            } else {
                s.push_str(&format!("{d:04}"));
            }
        }
    }
    if dscale > 0 {
        s.push('.');
        let mut frac = String::new();
        for j in 1..=dscale.div_ceil(4) as i64 {
            frac.push_str(&format!("{:04}", digit(weight + j)));
        }
        frac.truncate(dscale);
        s.push_str(&frac);
    }
    Ok(Cell::Numeric(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> String {
        let mut raw = Vec::new();
        for w in [ndigits, weight as u16, sign, dscale].iter().chain(digits) {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        match decode_numeric(&raw).unwrap() {
            Cell::Numeric(s) => s,
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn numerics() {
        assert_eq!(numeric(2, 0, 0, 2, &[3155, 300]), "3155.03");
        assert_eq!(numeric(2, 1, 0, 0, &[1, 2345]), "12345");
        assert_eq!(numeric(1, -1, 0x4000, 4, &[5]), "-0.0005");
        assert_eq!(numeric(1, -2, 0, 6, &[1200]), "0.000012");
        assert_eq!(numeric(0, 0, 0, 0, &[]), "0");
        assert_eq!(numeric(0, 0, 0, 2, &[]), "0.00");
        assert_eq!(numeric(1, 2, 0, 0, &[7]), "700000000");
        assert_eq!(numeric(0, 0, 0xC000, 0, &[]), "Null");
    }
}
