using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace Mamba4.Server;

/// <summary>
/// The database of one of the server's stores (users, series): an embedded SQLite file (the default) or a PostgreSQL
/// server (a postgres:// URL, for several replicas on one database). Both run the same SQL — named parameters
/// @x, upserts with ON CONFLICT — and differ only in the connection, the schema's type names and how
/// <see cref="Locked{T}"/> serialises the writers of one key. A write commits before its request is acknowledged
/// (SQLite: write-ahead log with synchronous=FULL; PostgreSQL: its own durable commit), so a killed replica loses
/// no acknowledged write. Not thread-safe: the caller serialises access (the open transaction is this object's state).
/// </summary>
public abstract class StateDb : IDisposable
{
    /// <summary>Opens <paramref name="target"/> (a file path, or postgres://user:password@host:port/database) and creates the schema; a bad target fails with one line naming <paramref name="option"/>.</summary>
    public static StateDb Open(string target, string what, string option, string schema) =>
        PostgresStateDb.IsUrl(target) ? new PostgresStateDb(target, what, option, schema) : new SqliteStateDb(target, what, option, schema);

    /// <summary>What the database is, for messages (a path, or the URL without its password).</summary>
    public abstract string Name { get; }

    /// <summary>sqlite or postgresql (OpenTelemetry's db.system).</summary>
    public abstract string System { get; }

    private DbTransaction? _tx;

    /// <summary>
    /// Runs <paramref name="work"/> in one transaction that holds the write lock of <paramref name="key"/> (across
    /// processes) until it commits, when <paramref name="work"/> returns; an exception rolls everything back. Called
    /// inside an open transaction, it takes <paramref name="key"/>'s lock too and joins that transaction.
    /// </summary>
    public T Locked<T>(string key, Func<T> work)
    {
        if (_tx is not null)
        {
            Lock(_tx, key);
            return work();
        }
        using var activity = ServerTracing.Source.StartActivity("state_db transaction");
        activity?.SetTag("db.system", System);
        _tx = Begin();
        var connection = _tx.Connection;   // (a committed transaction forgets it)
        try
        {
            Lock(_tx, key);
            var result = work();
            _tx.Commit();
            return result;
        }
        finally
        {
            _tx.Dispose();
            _tx = null;
            End(connection);
        }
    }

    public void Locked(string key, Action work) => Locked(key, () => { work(); return 0; });

    /// <summary>Begins a transaction (on a connection of its own, for a server).</summary>
    protected abstract DbTransaction Begin();
    /// <summary>Makes the transaction hold <paramref name="key"/>'s write lock until it ends.</summary>
    protected abstract void Lock(DbTransaction tx, string key);
    /// <summary>After a transaction: gives its connection back.</summary>
    protected abstract void End(DbConnection? connection);
    /// <summary>A connection for one statement outside a transaction, and whether the caller disposes it.</summary>
    protected abstract (DbConnection Connection, bool Owned) Connect();

    /// <summary>Runs one statement with named parameters (in the open transaction, if any); the rows it changed.</summary>
    public int Run(string sql, params (string Name, object? Value)[] parameters) => With(sql, parameters, cmd => cmd.ExecuteNonQuery());

    /// <summary>Inserts <paramref name="rows"/> (values in <paramref name="columns"/>' order), 256 rows to a statement: one round trip each, on a server.</summary>
    public void Insert(string table, string[] columns, IReadOnlyList<object?[]> rows)
    {
        const int PerStatement = 256;
        for (int start = 0; start < rows.Count; start += PerStatement)
        {
            int n = Math.Min(PerStatement, rows.Count - start);
            var tuples = new string[n];
            var parameters = new (string Name, object? Value)[n * columns.Length];
            for (int r = 0; r < n; r++)
            {
                for (int c = 0; c < columns.Length; c++) parameters[r * columns.Length + c] = ($"@p{r}_{c}", rows[start + r][c]);
                tuples[r] = "(" + string.Join(", ", Enumerable.Range(0, columns.Length).Select(c => $"@p{r}_{c}")) + ")";
            }
            Run($"INSERT INTO {table} ({string.Join(", ", columns)}) VALUES {string.Join(", ", tuples)}", parameters);
        }
    }

    /// <summary>The rows of one query, each read by <paramref name="row"/>.</summary>
    public List<T> Query<T>(string sql, Func<DbDataReader, T> row, params (string Name, object? Value)[] parameters) => With(sql, parameters, cmd =>
    {
        using var r = cmd.ExecuteReader();
        var rows = new List<T>();
        while (r.Read()) rows.Add(row(r));
        return rows;
    });

    private T With<T>(string sql, (string Name, object? Value)[] parameters, Func<DbCommand, T> use)
    {
        var (connection, owned) = _tx is null ? Connect() : (_tx.Connection!, false);
        try
        {
            using var cmd = connection.CreateCommand();
            cmd.Transaction = _tx;
            cmd.CommandText = sql;
            foreach (var (name, value) in parameters)
            {
                var p = cmd.CreateParameter();
                p.ParameterName = name;
                p.Value = value ?? DBNull.Value;
                cmd.Parameters.Add(p);
            }
            return use(cmd);
        }
        finally { if (owned) connection.Dispose(); }
    }

    /// <summary>The schema of <see cref="IdempotencyKeys"/>: responses kept under Idempotency-Keys; created_at in Unix milliseconds.</summary>
    protected const string IdempotencySchema = """
        CREATE TABLE IF NOT EXISTS idempotency_keys (
            key TEXT PRIMARY KEY, scope TEXT NOT NULL, body_hash BLOB NOT NULL, status INTEGER NOT NULL,
            response BLOB NOT NULL, created_at INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at);
        """;

    public StoredResponse? FindResponse(string key) => Query(
        "SELECT scope, body_hash, status, response, created_at FROM idempotency_keys WHERE key = @k",
        r => new StoredResponse(r.GetString(0), (byte[])r[1], (int)r.GetInt64(2), (byte[])r[3], DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(4))),
        ("@k", key)).SingleOrDefault();

    public void SaveResponse(string key, StoredResponse response) => Run("""
        INSERT INTO idempotency_keys (key, scope, body_hash, status, response, created_at) VALUES (@k, @s, @h, @st, @r, @t)
        ON CONFLICT(key) DO UPDATE SET scope = @s, body_hash = @h, status = @st, response = @r, created_at = @t
        """, ("@k", key), ("@s", response.Scope), ("@h", response.BodyHash), ("@st", (long)response.Status), ("@r", response.Body), ("@t", response.CreatedAt.ToUnixTimeMilliseconds()));

    /// <summary>Deletes at most <paramref name="limit"/> keys created before <paramref name="createdBefore"/> (bounded work per write).</summary>
    public void ForgetResponses(DateTimeOffset createdBefore, int limit) => Run(
        "DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys WHERE created_at < @t ORDER BY created_at LIMIT @n)",
        ("@t", createdBefore.ToUnixTimeMilliseconds()), ("@n", (long)limit));

    internal static byte[] Bytes(float[] v)
    {
        var b = new byte[v.Length * sizeof(float)];
        Buffer.BlockCopy(v, 0, b, 0, b.Length);
        return b;
    }

    internal static float[] Floats(byte[] b)
    {
        var v = new float[b.Length / sizeof(float)];
        Buffer.BlockCopy(b, 0, v, 0, v.Length * sizeof(float));
        return v;
    }

    public abstract void Dispose();
}

/// <summary>
/// One SQLite file: write-ahead logging with synchronous=FULL, so a committed transaction survives a killed process.
/// A write transaction is BEGIN IMMEDIATE, which takes the file's one write lock: every key's writers are serialised,
/// in this process and any other on the same file. An unusable file fails at start with a message naming it and the option.
/// </summary>
public sealed class SqliteStateDb : StateDb
{
    private readonly SqliteConnection _db = null!;

    public SqliteStateDb(string path, string what, string option, string schema)
    {
        Name = Path.GetFullPath(path);
        try
        {
            var dir = Path.GetDirectoryName(Name)!;
            if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"cannot create the {what} {Name}: directory {dir} does not exist (choose another with {option})");
            _db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Name, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = false }.ToString());
            _db.Open();
            Run("PRAGMA journal_mode=WAL;");
            Run("PRAGMA synchronous=FULL;");
            Run("PRAGMA busy_timeout=5000;");
            Run(schema);
            Run(IdempotencySchema);
        }
        catch (SqliteException e)
        {
            _db?.Dispose();
            throw new IOException($"cannot open the {what} {Name}: {e.Message} (choose another file with {option})", e);
        }
    }

    public override string Name { get; }
    public override string System => "sqlite";

    protected override DbTransaction Begin() => _db.BeginTransaction(deferred: false);   // BEGIN IMMEDIATE
    protected override void Lock(DbTransaction tx, string key) { }   // the transaction already holds the file's write lock
    protected override void End(DbConnection? connection) { }
    protected override (DbConnection Connection, bool Owned) Connect() => (_db, false);

    public override void Dispose()
    {
        try { Run("PRAGMA wal_checkpoint(TRUNCATE);"); } catch (SqliteException) { }
        _db.Dispose();
    }
}
