using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

[assembly: AssemblyFixture(typeof(Mamba4.Tests.PostgresServer))]

namespace Mamba4.Tests;

/// <summary>
/// One real PostgreSQL server for the test run, shared by the tests tagged [Trait("Category", "Postgres")]: started
/// on first use with Debian's initdb and pg_ctl in a temporary folder, on a free loopback port, password
/// authentication (scram-sha-256), and stopped when the run ends. Each test takes a database of its own. Where no
/// PostgreSQL can be found (apt-get install postgresql; or MAMBA4_PG_BIN=folder of initdb) the test is skipped with
/// that reason; any other failure to start is a failure. As root (CI), the server runs as the postgres user, since
/// initdb refuses root. The tests kill replicas, never this server, so it runs with fsync=off (faster on 2 cores).
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    public const string User = "mamba4";
    public const string Password = "test-pass:@/";   // characters that the URL must escape
    private readonly SemaphoreSlim _gate = new(1, 1);
    private string? _dir, _bin;
    private int _port;
    private bool _started;

    /// <summary>A new empty database's postgres:// URL; skips the test where PostgreSQL is not installed.</summary>
    public async Task<string> NewDatabaseAsync()
    {
        await StartAsync();
        var name = "t_" + Guid.NewGuid().ToString("N")[..12];
        await using (var c = new NpgsqlConnection(ConnectionString("postgres")))
        {
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand($"CREATE DATABASE {name}", c);
            await cmd.ExecuteNonQueryAsync();
        }
        return Url(name);
    }

    public string Url(string database) => $"postgres://{User}:{Uri.EscapeDataString(Password)}@127.0.0.1:{_port}/{database}";

    public string ConnectionString(string database) =>
        new NpgsqlConnectionStringBuilder { Host = "127.0.0.1", Port = _port, Username = User, Password = Password, Database = database, Pooling = false }.ToString();

    /// <summary>Where initdb is: MAMBA4_PG_BIN, else the newest /usr/lib/postgresql/N/bin, else the PATH; null when nowhere.</summary>
    public static string? FindBin()
    {
        if (Environment.GetEnvironmentVariable("MAMBA4_PG_BIN") is { Length: > 0 } env) return File.Exists(Path.Combine(env, "initdb")) ? env : null;
        var debian = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(b => File.Exists(Path.Combine(b, "initdb")))
                .OrderByDescending(b => int.TryParse(Path.GetFileName(Path.GetDirectoryName(b)), out int v) ? v : 0).FirstOrDefault()
            : null;
        return debian ?? (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').FirstOrDefault(p => p.Length > 0 && File.Exists(Path.Combine(p, "initdb")));
    }

    private async Task StartAsync()
    {
        await _gate.WaitAsync();
        try
        {
            if (_started) return;
            _bin = FindBin();
            if (_bin is null) Assert.Skip("PostgreSQL is not installed (apt-get install postgresql, or set MAMBA4_PG_BIN to the folder of initdb): the PostgreSQL store tests are skipped");
            _dir = Directory.CreateTempSubdirectory("mamba4-pg-").FullName;
            File.WriteAllText(Path.Combine(_dir, "pw"), Password + "\n");
            if (Environment.UserName == "root") await RunAsync("chown", "-R", "postgres", _dir);
            var data = Path.Combine(_dir, "data");
            await RunAsPostgresAsync("initdb", "-D", data, "-U", User, "--pwfile=" + Path.Combine(_dir, "pw"), "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync");
            _port = FreePort();
            File.AppendAllText(Path.Combine(data, "postgresql.conf"),
                $"\nlisten_addresses = '127.0.0.1'\nport = {_port}\nunix_socket_directories = ''\nfsync = off\nmax_connections = 60\nshared_buffers = 16MB\n");
            await RunAsPostgresAsync("pg_ctl", "-D", data, "-l", Path.Combine(_dir, "log"), "-w", "-t", "60", "start");
            _started = true;
        }
        finally { _gate.Release(); }
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private Task RunAsPostgresAsync(string tool, params string[] args) => Environment.UserName == "root"
        ? RunAsync("runuser", ["-u", "postgres", "--", Path.Combine(_bin!, tool), .. args])
        : RunAsync(Path.Combine(_bin!, tool), args);

    private async Task RunAsync(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = Task.WhenAll(p.StandardOutput.ReadToEndAsync(), p.StandardError.ReadToEndAsync());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        await p.WaitForExitAsync(timeout.Token);
        var text = string.Join("\n", await output);
        if (p.ExitCode != 0)
        {
            var log = _dir is not null && File.Exists(Path.Combine(_dir, "log")) ? File.ReadAllText(Path.Combine(_dir, "log")) : "";
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {p.ExitCode}: {text}\n{log}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_started) await RunAsPostgresAsync("pg_ctl", "-D", Path.Combine(_dir!, "data"), "-m", "immediate", "-w", "stop");
        if (_dir is not null) Directory.Delete(_dir, recursive: true);
        _gate.Dispose();
    }
}
