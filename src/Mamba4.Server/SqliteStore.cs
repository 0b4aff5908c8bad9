using Microsoft.Data.Sqlite;

namespace Mamba4.Server;

/// <summary>
/// One SQLite file of the server's states (users, series): write-ahead logging with synchronous=FULL, so a
/// committed transaction survives a killed process; the schema is created on open. An unusable file fails at
/// start with a message naming it and the option that chooses another. Not thread-safe: the caller serialises access.
/// </summary>
public abstract class SqliteStore : IDisposable
{
    protected SqliteStore(string path, string what, string option, string schema)
    {
        Path_ = Path.GetFullPath(path);
        try
        {
            var dir = Path.GetDirectoryName(Path_)!;
            if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"cannot create the {what} {Path_}: directory {dir} does not exist (choose another with {option})");
            Db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path_, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = false }.ToString());
            Db.Open();
            Exec("PRAGMA journal_mode=WAL;");
            Exec("PRAGMA synchronous=FULL;");
            Exec("PRAGMA busy_timeout=5000;");
            Exec(schema);
            Exec(IdempotencySchema);
        }
        catch (SqliteException e)
        {
            Db?.Dispose();
            throw new IOException($"cannot open the {what} {Path_}: {e.Message} (choose another file with {option})", e);
        }
    }

    public string Path_ { get; }
    protected SqliteConnection Db { get; } = null!;

    protected void Exec(string sql)
    {
        using var cmd = Db.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    /// <summary>Runs one statement with named parameters (inside <paramref name="tx"/> when given).</summary>
    protected void Run(SqliteTransaction? tx, string sql, params (string Name, object Value)[] parameters)
    {
        using var cmd = Db.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (name, value) in parameters) cmd.Parameters.AddWithValue(name, value);
        cmd.ExecuteNonQuery();
    }

    /// <summary>Runs the deleting statements of one key ($id) in a transaction; whether the last one removed a row.</summary>
    protected bool Delete(string sql, string id)
    {
        using var tx = Db.BeginTransaction();
        using var cmd = Db.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql + " SELECT changes();";
        cmd.Parameters.AddWithValue("$id", id);
        bool existed = (long)cmd.ExecuteScalar()! > 0;
        tx.Commit();
        return existed;
    }

    /// <summary>Responses kept under Idempotency-Keys (see <see cref="IdempotencyKeys"/>); created_at in Unix milliseconds.</summary>
    private const string IdempotencySchema = """
        CREATE TABLE IF NOT EXISTS idempotency_keys (
            key TEXT PRIMARY KEY, scope TEXT NOT NULL, body_hash BLOB NOT NULL, status INTEGER NOT NULL,
            response BLOB NOT NULL, created_at INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at);
        """;

    public StoredResponse? FindResponse(string key)
    {
        using var cmd = Db.CreateCommand();
        cmd.CommandText = "SELECT scope, body_hash, status, response, created_at FROM idempotency_keys WHERE key = $k";
        cmd.Parameters.AddWithValue("$k", key);
        using var r = cmd.ExecuteReader();
        if (!r.Read()) return null;
        return new StoredResponse(r.GetString(0), (byte[])r[1], r.GetInt32(2), (byte[])r[3], DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(4)));
    }

    public void SaveResponse(SqliteTransaction tx, string key, StoredResponse response) => Run(tx, """
        INSERT INTO idempotency_keys (key, scope, body_hash, status, response, created_at) VALUES ($k, $s, $h, $st, $r, $t)
        ON CONFLICT(key) DO UPDATE SET scope = $s, body_hash = $h, status = $st, response = $r, created_at = $t
        """, ("$k", key), ("$s", response.Scope), ("$h", response.BodyHash), ("$st", response.Status), ("$r", response.Body), ("$t", response.CreatedAt.ToUnixTimeMilliseconds()));

    /// <summary>Deletes at most <paramref name="limit"/> keys created before <paramref name="createdBefore"/> (bounded work per write).</summary>
    public void ForgetResponses(SqliteTransaction tx, DateTimeOffset createdBefore, int limit) => Run(tx,
        "DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys WHERE created_at < $t ORDER BY created_at LIMIT $n)",
        ("$t", createdBefore.ToUnixTimeMilliseconds()), ("$n", limit));

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

    public void Dispose()
    {
        try { Exec("PRAGMA wal_checkpoint(TRUNCATE);"); } catch (SqliteException) { }
        Db.Dispose();
    }
}
