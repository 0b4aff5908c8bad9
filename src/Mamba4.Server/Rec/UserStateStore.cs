namespace Mamba4.Server.Rec;

/// <summary>A user's stored recurrent state: every layer's conv and ssm state and the last seq_output, as float32 blobs.</summary>
public sealed record UserState(string User, string ModelVersion, long Length, float[] State, float[] SeqOutput, string UpdatedAt);

/// <summary>
/// User states and their event log in a <see cref="StateDb"/> (SQLite file or PostgreSQL URL): an event batch and
/// the state it produces commit in one transaction before the request is acknowledged, so a killed server
/// loses no acknowledged event. The event log lets a state computed by another checkpoint be recomputed.
/// A read-advance-write of one user runs inside <see cref="Locked{T}"/>. Not thread-safe: the caller serialises access.
/// </summary>
public sealed class UserStateStore(string target) : IDisposable
{
    public StateDb Db { get; } = StateDb.Open(target, "user state database", "--state-db", """
        CREATE TABLE IF NOT EXISTS users (
            id TEXT PRIMARY KEY, model_version TEXT NOT NULL, length INTEGER NOT NULL,
            state BLOB NOT NULL, seq_output BLOB NOT NULL, updated_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS events (
            user_id TEXT NOT NULL, seq INTEGER NOT NULL, item INTEGER NOT NULL, at TEXT NOT NULL,
            PRIMARY KEY (user_id, seq)) WITHOUT ROWID;
        """);

    /// <summary>Runs <paramref name="work"/> in one transaction holding <paramref name="user"/>'s write lock (see <see cref="StateDb.Locked{T}"/>).</summary>
    public T Locked<T>(string user, Func<T> work) => Db.Locked("users/" + user, work);

    public UserState? Get(string user) => Db.Query(
        "SELECT model_version, length, state, seq_output, updated_at FROM users WHERE id = @id",
        r => new UserState(user, r.GetString(0), r.GetInt64(1), StateDb.Floats((byte[])r[2]), StateDb.Floats((byte[])r[3]), r.GetString(4)),
        ("@id", user)).SingleOrDefault();

    /// <summary>The user's interactions in order (for recomputing a state, or excluding seen items).</summary>
    public long[] Events(string user) => [.. Db.Query("SELECT item FROM events WHERE user_id = @id ORDER BY seq", r => r.GetInt64(0), ("@id", user))];

    /// <summary>Appends <paramref name="newItems"/> (positions previous.Length, …) and stores the state they lead to, atomically (with <paramref name="alsoInTransaction"/>'s writes).</summary>
    public void Append(UserState state, IReadOnlyList<long> newItems, Action? alsoInTransaction = null) => Locked(state.User, () =>
    {
        long first = state.Length - newItems.Count;
        Db.Insert("events", ["user_id", "seq", "item", "at"], [.. newItems.Select((item, k) => new object?[] { state.User, first + k, item, state.UpdatedAt })]);
        Put(state);
        alsoInTransaction?.Invoke();
        return 0;
    });

    /// <summary>Stores a (recomputed) state without new events.</summary>
    public void Put(UserState state) => Db.Run("""
        INSERT INTO users (id, model_version, length, state, seq_output, updated_at) VALUES (@id, @v, @n, @s, @o, @t)
        ON CONFLICT(id) DO UPDATE SET model_version = @v, length = @n, state = @s, seq_output = @o, updated_at = @t
        """, ("@id", state.User), ("@v", state.ModelVersion), ("@n", state.Length), ("@s", StateDb.Bytes(state.State)), ("@o", StateDb.Bytes(state.SeqOutput)), ("@t", state.UpdatedAt));

    /// <summary>Forgets the user's events and state; whether it had a state.</summary>
    public bool Delete(string user) => Locked(user, () =>
    {
        Db.Run("DELETE FROM events WHERE user_id = @id", ("@id", user));
        return Db.Run("DELETE FROM users WHERE id = @id", ("@id", user)) > 0;
    });

    public long UserCount() => Db.Query("SELECT COUNT(*) FROM users", r => r.GetInt64(0)).Single();

    public void Dispose() => Db.Dispose();
}
