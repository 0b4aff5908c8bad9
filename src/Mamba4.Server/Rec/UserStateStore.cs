using Microsoft.Data.Sqlite;

namespace Mamba4.Server.Rec;

/// <summary>A user's stored recurrent state: every layer's conv and ssm state and the last seq_output, as float32 blobs.</summary>
public sealed record UserState(string User, string ModelVersion, long Length, float[] State, float[] SeqOutput, string UpdatedAt);

/// <summary>
/// User states and their event log in SQLite, write-ahead logging with synchronous=FULL: an event batch and
/// the state it produces commit in one transaction before the request is acknowledged, so a killed server
/// loses no acknowledged event. The event log lets a state computed by another checkpoint be recomputed.
/// Not thread-safe: the caller serialises access.
/// </summary>
public sealed class UserStateStore(string path) : SqliteStore(path, "user state database", "--state-db", """
    CREATE TABLE IF NOT EXISTS users (
        id TEXT PRIMARY KEY, model_version TEXT NOT NULL, length INTEGER NOT NULL,
        state BLOB NOT NULL, seq_output BLOB NOT NULL, updated_at TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS events (
        user_id TEXT NOT NULL, seq INTEGER NOT NULL, item INTEGER NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY (user_id, seq)) WITHOUT ROWID;
    """)
{
    public UserState? Get(string user)
    {
        using var cmd = Db.CreateCommand();
        cmd.CommandText = "SELECT model_version, length, state, seq_output, updated_at FROM users WHERE id = $id";
        cmd.Parameters.AddWithValue("$id", user);
        using var r = cmd.ExecuteReader();
        if (!r.Read()) return null;
        return new UserState(user, r.GetString(0), r.GetInt64(1), Floats((byte[])r[2]), Floats((byte[])r[3]), r.GetString(4));
    }

    /// <summary>The user's interactions in order (for recomputing a state, or excluding seen items).</summary>
    public long[] Events(string user)
    {
        using var cmd = Db.CreateCommand();
        cmd.CommandText = "SELECT item FROM events WHERE user_id = $id ORDER BY seq";
        cmd.Parameters.AddWithValue("$id", user);
        using var r = cmd.ExecuteReader();
        var items = new List<long>();
        while (r.Read()) items.Add(r.GetInt64(0));
        return [.. items];
    }

    /// <summary>Appends <paramref name="newItems"/> (positions previous.Length, …) and stores the state they lead to, atomically (with <paramref name="alsoInTransaction"/>'s writes).</summary>
    public void Append(UserState state, IReadOnlyList<long> newItems, Action<SqliteTransaction>? alsoInTransaction = null)
    {
        using var tx = Db.BeginTransaction();
        using (var ins = Db.CreateCommand())
        {
            ins.Transaction = tx;
            ins.CommandText = "INSERT INTO events (user_id, seq, item, at) VALUES ($u, $s, $i, $t)";
            var pu = ins.Parameters.Add("$u", SqliteType.Text);
            var ps = ins.Parameters.Add("$s", SqliteType.Integer);
            var pi = ins.Parameters.Add("$i", SqliteType.Integer);
            var pt = ins.Parameters.Add("$t", SqliteType.Text);
            long first = state.Length - newItems.Count;
            for (int k = 0; k < newItems.Count; k++)
            {
                pu.Value = state.User; ps.Value = first + k; pi.Value = newItems[k]; pt.Value = state.UpdatedAt;
                ins.ExecuteNonQuery();
            }
        }
        Put(state, tx);
        alsoInTransaction?.Invoke(tx);
        tx.Commit();
    }

    /// <summary>Stores a (recomputed) state without new events.</summary>
    public void Put(UserState state, SqliteTransaction? tx = null) => Run(tx, """
        INSERT INTO users (id, model_version, length, state, seq_output, updated_at) VALUES ($id, $v, $n, $s, $o, $t)
        ON CONFLICT(id) DO UPDATE SET model_version = $v, length = $n, state = $s, seq_output = $o, updated_at = $t
        """, ("$id", state.User), ("$v", state.ModelVersion), ("$n", state.Length), ("$s", Bytes(state.State)), ("$o", Bytes(state.SeqOutput)), ("$t", state.UpdatedAt));

    public bool Delete(string user) => Delete("DELETE FROM events WHERE user_id = $id; DELETE FROM users WHERE id = $id;", user);

    public long UserCount()
    {
        using var cmd = Db.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM users";
        return (long)cmd.ExecuteScalar()!;
    }
}
