//! PostgreSQL for the tests that are not async (the real binary against a real server).

/// `WORKQ_TEST_PG_URL`, or `None` to skip the test, said on stderr; but never under
/// CI=true, where a skipped test would pass for a tested one.
pub fn url() -> Option<String> {
    match std::env::var("WORKQ_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but WORKQ_TEST_PG_URL is unset: the PostgreSQL tests must run");
            }
            eprintln!("SKIPPED: WORKQ_TEST_PG_URL is not set");
            None
        }
    }
}

/// Runs `text` on the server, on a runtime of its own: the first column of each row it
/// returns, as text.
pub fn sql(url: &str, text: &str) -> Vec<String> {
    let (url, text) = (url.to_string(), text.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            tokio::spawn(conn);
            client
                .simple_query(&text)
                .await
                .unwrap()
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some(r.get(0).unwrap_or("").to_string())
                    }
                    _ => None,
                })
                .collect()
        })
    })
    .join()
    .unwrap()
}

/// A fresh schema `wq_<random>` on the server, dropped with all it holds when the value
/// is dropped.
pub fn schema(url: &str) -> super::PgSchema {
    let name = format!("wq_{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    sql(url, &format!("CREATE SCHEMA {name}"));
    super::PgSchema {
        server: url.to_string(),
        name,
    }
}
