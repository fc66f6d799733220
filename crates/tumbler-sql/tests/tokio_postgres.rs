//! The handlers driven by tokio-postgres over a real socket: simple and extended protocol,
//! types, errors, transactions and concurrent sessions.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, sqlstate};
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::types::Type;

const ACCOUNTS: &str = "CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, \
                        balance REAL, active BOOLEAN, photo BLOB, opened DATE)";

fn command_counts(messages: &[SimpleQueryMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::CommandComplete(rows) => Some(*rows),
            _ => None,
        })
        .collect()
}

fn text_rows(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_query_multiple_statements() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let sql = format!(
        "{ACCOUNTS}; INSERT INTO accounts (id, owner) VALUES (1, 'ann'), (2, 'bob'); \
         UPDATE accounts SET balance = 1.5 WHERE id = 2; SELECT id, owner, balance FROM accounts \
         ORDER BY id; DELETE FROM accounts WHERE id = 1"
    );
    let messages = client.simple_query(&sql).await.unwrap();
    assert_eq!(command_counts(&messages), [0, 2, 1, 2, 1]);
    let rows = text_rows(&messages);
    assert_eq!(
        rows,
        [
            vec![Some("1".to_owned()), Some("ann".to_owned()), None],
            vec![
                Some("2".to_owned()),
                Some("bob".to_owned()),
                Some("1.5".to_owned())
            ],
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_query_error_rolls_back_string() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE t (a INTEGER UNIQUE)")
        .await
        .unwrap();
    let error = client
        .simple_query(
            "INSERT INTO t VALUES (1); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "23505");
    let count: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        count, 0,
        "an error in a multi-statement string undoes the whole string"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_query_empty_string() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    // tokio-postgres reports EmptyQueryResponse as a command that affected no rows.
    let messages = client.simple_query("").await.unwrap();
    assert_eq!(command_counts(&messages), [0]);
    let messages = client.simple_query("-- only a comment").await.unwrap();
    assert_eq!(command_counts(&messages), [0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_parameters_round_trip() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute(ACCOUNTS).await.unwrap();
    let insert = "INSERT INTO accounts (id, owner, balance, active, photo, opened) \
                  VALUES ($1, $2, $3, $4, $5, $6)";
    let photo = vec![0u8, 1, 255];
    let inserted = client
        .execute(
            insert,
            &[&7i64, &"ann", &2.5f64, &true, &photo, &"2024-05-01"],
        )
        .await
        .unwrap();
    assert_eq!(inserted, 1);

    let row = client
        .query_one(
            "SELECT id, owner, balance, active, photo, opened FROM accounts WHERE id = $1",
            &[&7i64],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 7);
    assert_eq!(row.get::<_, String>(1), "ann");
    assert_eq!(row.get::<_, f64>(2), 2.5);
    assert!(row.get::<_, bool>(3));
    assert_eq!(row.get::<_, Vec<u8>>(4), photo);
    assert_eq!(row.get::<_, String>(5), "2024-05-01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_parameter_types_described() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute(ACCOUNTS).await.unwrap();
    let statement = client
        .prepare("UPDATE accounts SET balance = balance + $1, owner = $2 WHERE id = $3")
        .await
        .unwrap();
    assert_eq!(statement.params(), [Type::FLOAT8, Type::TEXT, Type::INT8]);
    assert!(statement.columns().is_empty());
    let statement = client
        .prepare("SELECT owner FROM accounts WHERE active = $1 LIMIT $2 OFFSET $3")
        .await
        .unwrap();
    assert_eq!(statement.params(), [Type::BOOL, Type::INT8, Type::INT8]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_typed_small_integers() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute(ACCOUNTS).await.unwrap();
    let statement = client
        .prepare_typed(
            "INSERT INTO accounts (id, owner, balance) VALUES ($1, $2, $3)",
            &[Type::INT4, Type::VARCHAR, Type::FLOAT4],
        )
        .await
        .unwrap();
    client
        .execute(&statement, &[&3i32, &"cy", &0.5f32])
        .await
        .unwrap();
    let statement = client
        .prepare_typed("SELECT owner FROM accounts WHERE id = $1", &[Type::INT2])
        .await
        .unwrap();
    let row = client.query_one(&statement, &[&3i16]).await.unwrap();
    assert_eq!(row.get::<_, &str>(0), "cy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_expression_types() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute(ACCOUNTS).await.unwrap();
    client
        .batch_execute("INSERT INTO accounts (id, owner) VALUES (1, 'a'), (2, 'b')")
        .await
        .unwrap();

    let statement = client
        .prepare("SELECT 1, 2.5, 'x', count(*), NULL, x'01' FROM accounts")
        .await
        .unwrap();
    let types: Vec<Type> = statement
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    assert_eq!(
        types,
        [
            Type::INT8,
            Type::FLOAT8,
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::BYTEA
        ]
    );

    let row = client.query_one(&statement, &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    assert_eq!(row.get::<_, f64>(1), 2.5);
    assert_eq!(row.get::<_, &str>(2), "x");
    assert_eq!(row.get::<_, i64>(3), 2);
    assert_eq!(row.get::<_, Option<&str>>(4), None);
    assert_eq!(row.get::<_, Vec<u8>>(5), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_expression_with_parameter_is_text() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let row = client
        .query_one("SELECT $1 || '!'", &[&"hi"])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "hi!");
    let row = client
        .query_one("SELECT CAST($1 AS INTEGER) * 2", &[&21i64])
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, &str>(0),
        "42",
        "NULL parameters leave the column untyped"
    );
    client
        .batch_execute("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let row = client
        .query_one("SELECT count(*) FROM t WHERE a = $1", &[&1i64])
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i64>(0),
        1,
        "an aggregate is typed with NULL parameters"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_insert_returning() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute(ACCOUNTS).await.unwrap();
    let rows = client
        .query(
            "INSERT INTO accounts (owner) VALUES ($1), ($2) RETURNING id, owner",
            &[&"a", &"b"],
        )
        .await
        .unwrap();
    let ids: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    assert_eq!(ids, [1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_null_parameter() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute(ACCOUNTS).await.unwrap();
    let none: Option<f64> = None;
    client
        .execute(
            "INSERT INTO accounts (id, owner, balance) VALUES ($1, $2, $3)",
            &[&1i64, &"n", &none],
        )
        .await
        .unwrap();
    let row = client
        .query_one("SELECT balance FROM accounts", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<f64>>(0), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_function() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let row = client.query_one("SELECT version()", &[]).await.unwrap();
    assert!(
        row.get::<_, &str>(0)
            .starts_with("PostgreSQL 13.0 (tumbler")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_and_show() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("SET application_name = 'report'")
        .await
        .unwrap();
    client
        .batch_execute("SET search_path TO public")
        .await
        .unwrap();
    let setting = client
        .query_one("SHOW application_name", &[])
        .await
        .unwrap();
    assert_eq!(setting.get::<_, &str>(0), "report");
    let setting = client.query_one("SHOW server_version", &[]).await.unwrap();
    assert_eq!(setting.get::<_, &str>(0), "13.0");
    let setting = client
        .simple_query("SHOW TRANSACTION ISOLATION LEVEL")
        .await
        .unwrap();
    assert_eq!(text_rows(&setting), [vec![Some("serializable".to_owned())]]);
    let error = client
        .query_one("SHOW no_such_setting", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "42704");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_then_good_query() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let cases = [
        ("SELEC 1", "42601"),
        ("SELECT * FROM missing", "42P01"),
        ("SELECT nope FROM (SELECT 1 AS a)", "42703"),
        ("SELECT no_such_function()", "42883"),
        ("SET", "42601"),
    ];
    for (sql, expected) in cases {
        let simple = client.simple_query(sql).await.unwrap_err();
        assert_eq!(sqlstate(&simple), expected, "simple protocol: {sql}");
        let extended = client.query(sql, &[]).await.unwrap_err();
        assert_eq!(sqlstate(&extended), expected, "extended protocol: {sql}");
        let row = client.query_one("SELECT 1", &[]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0), 1, "session usable after: {sql}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_unique_violation() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE t (a INTEGER PRIMARY KEY)")
        .await
        .unwrap();
    client
        .execute("INSERT INTO t VALUES ($1)", &[&1i64])
        .await
        .unwrap();
    let error = client
        .execute("INSERT INTO t VALUES ($1)", &[&1i64])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "23505");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bad_parameter_value() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let statement = client
        .prepare_typed("SELECT $1", &[Type::INT8])
        .await
        .unwrap();
    let error = client.query(&statement, &[&"twelve"]).await.unwrap_err();
    assert!(
        sqlstate(&error).starts_with("none"),
        "tokio-postgres rejects it before sending"
    );
    let error = client.simple_query("SELECT $1").await.unwrap_err();
    assert_eq!(sqlstate(&error), "42P02");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_rejects_two_statements() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let error = client.prepare("SELECT 1; SELECT 2").await.unwrap_err();
    assert_eq!(sqlstate(&error), "42601");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_aborted_until_rollback() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE t (a INTEGER)")
        .await
        .unwrap();
    client
        .batch_execute("BEGIN; INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let error = client
        .batch_execute("SELECT * FROM missing")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "42P01");
    let error = client.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&error), "25P02");
    let messages = client.simple_query("COMMIT").await.unwrap();
    assert_eq!(command_counts(&messages).len(), 1);
    let count: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0, "COMMIT of an aborted transaction rolls it back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_savepoint_recovers() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client
        .batch_execute("CREATE TABLE t (a INTEGER UNIQUE)")
        .await
        .unwrap();

    let mut transaction = client.transaction().await.unwrap();
    transaction
        .execute("INSERT INTO t VALUES (1)", &[])
        .await
        .unwrap();
    let savepoint = transaction.savepoint("inner").await.unwrap();
    assert!(
        savepoint
            .execute("INSERT INTO t VALUES (1)", &[])
            .await
            .is_err()
    );
    savepoint.rollback().await.unwrap();

    transaction
        .execute("INSERT INTO t VALUES (2)", &[])
        .await
        .unwrap();
    transaction.commit().await.unwrap();

    let count: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_two_sessions() {
    let server = TestServer::start().await;
    let mut writer = server.connect().await;
    let reader = server.connect().await;
    writer
        .batch_execute("CREATE TABLE t (a INTEGER)")
        .await
        .unwrap();

    let transaction = writer.transaction().await.unwrap();
    transaction
        .execute("INSERT INTO t VALUES ($1)", &[&1i64])
        .await
        .unwrap();
    let seen: i64 = reader
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 0, "uncommitted row is invisible to another session");
    let own: i64 = transaction
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(own, 1, "the writing session sees its own row");
    transaction.commit().await.unwrap();
    let seen: i64 = reader
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 1, "committed row is visible");

    let transaction = writer.transaction().await.unwrap();
    transaction
        .execute("INSERT INTO t VALUES (2)", &[])
        .await
        .unwrap();
    transaction.rollback().await.unwrap();
    let seen: i64 = reader
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 1, "rolled-back row never appears");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_writer_waits_for_lock() {
    let server = TestServer::start().await;
    let first = server.connect().await;
    let second = server.connect().await;
    first
        .batch_execute("CREATE TABLE t (a INTEGER)")
        .await
        .unwrap();
    first
        .batch_execute("BEGIN; INSERT INTO t VALUES (1)")
        .await
        .unwrap();

    let waiting = tokio::spawn(async move {
        second
            .batch_execute("BEGIN; INSERT INTO t VALUES (2); COMMIT")
            .await
            .map(|()| second)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "second writer waits while the first holds the lock"
    );
    first.batch_execute("COMMIT").await.unwrap();
    let second = waiting.await.unwrap().unwrap();
    let count: i64 = second
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_timeout_reports_55p03() {
    let server = TestServer::start_with_busy_timeout(Duration::from_millis(200)).await;
    let holder = server.connect().await;
    let waiter = server.connect().await;
    holder
        .batch_execute("CREATE TABLE t (a INTEGER)")
        .await
        .unwrap();
    holder
        .batch_execute("BEGIN; INSERT INTO t VALUES (1)")
        .await
        .unwrap();

    let started = Instant::now();
    let error = waiter
        .execute("INSERT INTO t VALUES (2)", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "55P03");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "the writer waited for the lock"
    );

    holder.batch_execute("COMMIT").await.unwrap();
    let inserted = waiter
        .execute("INSERT INTO t VALUES (2)", &[])
        .await
        .unwrap();
    assert_eq!(inserted, 1, "the session works again once the lock is free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_transaction_rejects_write() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE t (a INTEGER)")
        .await
        .unwrap();
    client.batch_execute("BEGIN READ ONLY").await.unwrap();
    let setting = client
        .query_one("SHOW transaction_read_only", &[])
        .await
        .unwrap();
    assert_eq!(setting.get::<_, &str>(0), "on");
    let error = client
        .batch_execute("INSERT INTO t VALUES (1)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "25006");
    client.batch_execute("ROLLBACK").await.unwrap();
    client
        .batch_execute("INSERT INTO t VALUES (1)")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_interrupts_statement() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE t (a INTEGER)")
        .await
        .unwrap();
    let cancel = client.cancel_token();
    let endless = "INSERT INTO t WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) \
                   SELECT x FROM n";
    let running = tokio::spawn(async move { client.batch_execute(endless).await.map(|()| client) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("cancelled statement returns")
        .unwrap();
    let Err(error) = result else {
        panic!("cancelled statement succeeded")
    };
    assert_eq!(sqlstate(&error), "57014");

    let other = server.connect().await;
    let inserted = tokio::time::timeout(
        Duration::from_secs(5),
        other.execute("INSERT INTO t VALUES (1)", &[]),
    );
    assert_eq!(inserted.await.expect("write lock released").unwrap(), 1);
    let count: i64 = other
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1, "the cancelled insert left no rows");
}

/// Sessions that insert and select without pause for the given time never get "database is
/// locked". The test prints the statement rate for the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_never_locked() {
    const SESSIONS: usize = 12;
    const RUN_TIME: Duration = Duration::from_secs(3);
    let server = TestServer::start().await;
    let setup = server.connect().await;
    setup
        .batch_execute("CREATE TABLE events (id INTEGER PRIMARY KEY, session INTEGER)")
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for session in 0..SESSIONS {
        let client = server.connect().await;
        tasks.push(tokio::spawn(async move {
            let insert = client
                .prepare("INSERT INTO events (session) VALUES ($1)")
                .await?;
            let count = client
                .prepare("SELECT count(*) FROM events WHERE session = $1")
                .await?;
            let deadline = Instant::now() + RUN_TIME;
            let mut inserted = 0i64;
            while Instant::now() < deadline {
                let id = i64::try_from(session).unwrap_or_default();
                if inserted % 5 == 4 {
                    client
                        .batch_execute(&format!(
                            "BEGIN; INSERT INTO events (session) VALUES ({id}); COMMIT"
                        ))
                        .await?;
                } else {
                    client.execute(&insert, &[&id]).await?;
                }
                inserted += 1;
                let seen: i64 = client.query_one(&count, &[&id]).await?.get(0);
                assert_eq!(seen, inserted, "session {session} sees all of its rows");
            }
            Ok::<i64, tokio_postgres::Error>(inserted)
        }));
    }
    let mut total = 0;
    for task in tasks {
        let inserted = task.await.unwrap();
        let inserted = inserted.unwrap_or_else(|error| panic!("{}", sqlstate(&error)));
        assert!(inserted > 0);
        total += inserted;
    }
    let stored: i64 = setup
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, total);
    let per_second = total as f64 / RUN_TIME.as_secs_f64();
    eprintln!(
        "{SESSIONS} sessions: {total} inserts (each followed by a select), {per_second:.0}/s"
    );
}
