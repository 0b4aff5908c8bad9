using System.Data;
using System.Data.Common;
using System.Text.RegularExpressions;
using Npgsql;

namespace Mamba4.Server;

/// <summary>
/// A PostgreSQL database (Npgsql) shared by any number of replicas. A write transaction is READ COMMITTED and first
/// takes a transaction-scoped advisory lock on a hash of its key (pg_advisory_xact_lock): two replicas' requests for
/// one user or series run one after the other, the second reading what the first committed — row locks could not
/// cover a user who has no row yet, and SERIALIZABLE would make the loser redo its model steps after a retry. Locks
/// of unrelated keys that hash alike only wait for each other. Connections are pooled; connecting gives up after
/// connect_timeout seconds (default 5) with one line naming the server.
/// </summary>
public sealed partial class PostgresStateDb : StateDb
{
    private readonly NpgsqlDataSource _source = null!;

    public static bool IsUrl(string target) => target.StartsWith("postgres://", StringComparison.Ordinal) || target.StartsWith("postgresql://", StringComparison.Ordinal);

    public PostgresStateDb(string url, string what, string option, string schema)
    {
        var builder = ConnectionString(url, option);
        Name = $"postgres://{builder.Username}@{builder.Host}:{builder.Port}/{builder.Database}";
        try
        {
            _source = NpgsqlDataSource.Create(builder);
            // One replica at a time creates the tables (concurrent CREATE TABLE IF NOT EXISTS can collide in the catalog).
            Locked("mamba4-schema", () => Run(PostgresTypes(schema + IdempotencySchema)));
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            _source?.Dispose();
            var cause = e.InnerException is { } inner && !e.Message.Contains(inner.Message, StringComparison.Ordinal) ? $"{e.Message}: {inner.Message}" : e.Message;
            throw new IOException($"cannot open the {what} {Name}: {cause.ReplaceLineEndings(" ")} (check the URL given to {option})", e);
        }
    }

    public override string Name { get; }
    public override string System => "postgresql";

    /// <summary>postgres://user:password@host[:port]/database[?connect_timeout=S&amp;sslmode=M] → Npgsql's settings; a malformed URL is one line (without the password).</summary>
    public static NpgsqlConnectionStringBuilder ConnectionString(string url, string option)
    {
        string Bad(string why) => $"{option}: {why} in '{Redacted(url)}'; expected postgres://user:password@host[:port]/database[?connect_timeout=SECONDS&sslmode=disable|prefer|require]";
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Host.Length == 0) throw new ArgumentException(Bad("no host"));
        var database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (database.Length == 0 || database.Contains('/')) throw new ArgumentException(Bad("no database name"));
        var userInfo = uri.UserInfo.Split(':', 2);
        if (userInfo[0].Length == 0) throw new ArgumentException(Bad("no user name"));
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = uri.Host, Port = uri.IsDefaultPort || uri.Port < 0 ? 5432 : uri.Port, Database = database,
            Username = Uri.UnescapeDataString(userInfo[0]), Password = userInfo.Length > 1 ? Uri.UnescapeDataString(userInfo[1]) : null,
            Timeout = 5, CommandTimeout = 30, ApplicationName = "mamba4",
        };
        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var (key, value) = pair.Split('=', 2) is [var k, var v] ? (k, Uri.UnescapeDataString(v)) : (pair, "");
            switch (key)
            {
                case "connect_timeout" when int.TryParse(value, out int s) && s is >= 1 and <= 300: builder.Timeout = s; break;
                case "connect_timeout": throw new ArgumentException(Bad($"connect_timeout must be whole seconds in [1, 300], got '{value}'"));
                case "sslmode" when Enum.TryParse<SslMode>(value, ignoreCase: true, out var mode) && value is "disable" or "prefer" or "require": builder.SslMode = mode; break;
                case "sslmode": throw new ArgumentException(Bad($"sslmode must be disable, prefer or require, got '{value}'"));
                default: throw new ArgumentException(Bad($"unknown parameter '{key}'"));
            }
        }
        return builder;
    }

    /// <summary>The URL with its password replaced by ***.</summary>
    public static string Redacted(string url) => PasswordInUrl().Replace(url, "$1***@");

    [GeneratedRegex(@"^(postgres(?:ql)?://[^:/@]*:)[^@]*@")]
    private static partial Regex PasswordInUrl();

    /// <summary>The stores' schema (written for SQLite) in PostgreSQL's type names: BLOB → BYTEA, INTEGER → BIGINT (SQLite's are 64-bit), no WITHOUT ROWID.</summary>
    internal static string PostgresTypes(string schema) =>
        Regex.Replace(Regex.Replace(schema, @"\bBLOB\b", "BYTEA"), @"\bINTEGER\b", "BIGINT").Replace(" WITHOUT ROWID", "");

    protected override DbTransaction Begin()
    {
        var connection = _source.OpenConnection();
        try { return connection.BeginTransaction(IsolationLevel.ReadCommitted); }
        catch { connection.Dispose(); throw; }
    }

    protected override void Lock(DbTransaction tx, string key)
    {
        using var cmd = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtextextended(@k, 0))", (NpgsqlConnection)tx.Connection!, (NpgsqlTransaction)tx);
        cmd.Parameters.AddWithValue("k", key);
        cmd.ExecuteNonQuery();
    }

    protected override void End(DbConnection? connection) => connection?.Dispose();
    protected override (DbConnection Connection, bool Owned) Connect() => (_source.OpenConnection(), true);

    public override void Dispose() => _source.Dispose();
}
