using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;

namespace Mamba4.Server;

/// <summary>A response kept under an Idempotency-Key: the request it answered (method and path, SHA-256 of the body), its status and body, and when.</summary>
public sealed record StoredResponse(string Scope, byte[] BodyHash, int Status, byte[] Body, DateTimeOffset CreatedAt);

/// <summary>A state-changing request with an Idempotency-Key header: the key, what it asks (method and path) and the SHA-256 of its body.</summary>
public sealed record IdempotentRequest(string Key, string Scope, byte[] BodyHash)
{
    public const string Header = "Idempotency-Key";
    public const string ReplayedHeader = "Idempotent-Replayed";
    public const int MaxKeyLength = 255;

    /// <summary>The request's key (null without the header); 400 when it is sent twice, empty, longer than 255 characters or not printable ASCII.</summary>
    public static IdempotentRequest? Of(HttpContext ctx, byte[] body)
    {
        if (!ctx.Request.Headers.TryGetValue(Header, out var values)) return null;
        if (values.Count != 1) throw ApiException.BadRequest($"send one {Header} header, got {values.Count}", Header);
        var key = values[0] ?? "";
        if (key.Length is 0 or > MaxKeyLength || !key.All(c => c is >= ' ' and <= '~'))
            throw ApiException.BadRequest($"{Header} must be 1 to {MaxKeyLength} printable ASCII characters, got {key.Length} characters", Header);
        return new IdempotentRequest(key, $"{ctx.Request.Method} {ctx.Request.Path}", SHA256.HashData(body));
    }
}

/// <summary>
/// Idempotency-Key on the state-changing POSTs (a user's events, a series' values), as Stripe's API has it: the
/// response of the first request with a key is stored beside the state it wrote, in the same database transaction,
/// so it survives a restart; a retry with the same key and the same body gets that response again (header
/// Idempotent-Replayed: true) and applies nothing; the same key with another request is a 422. Keys are kept
/// for <see cref="ServerOptions.IdempotencyKeyLifetime"/>; every write forgets at most 64 expired ones. The
/// caller runs <see cref="Replay"/> and the write in one <see cref="StateDb.Locked{T}"/> transaction, and
/// <see cref="Replay"/> takes the key's lock in it, so two concurrent requests with one key apply once, on any replica.
/// </summary>
public sealed class IdempotencyKeys(ServerOptions options)
{
    /// <summary>The most expired keys one write forgets (bounded work per request).</summary>
    public const int ForgetPerWrite = 64;

    /// <summary>The live stored response of an earlier request with this key, or null; 422 when the key answered another request.</summary>
    public StoredResponse? Replay(StateDb db, IdempotentRequest? request)
    {
        if (request is null) return null;
        // Inside the write's transaction: the key's lock too, so that requests with one key for different users or series apply once.
        var stored = db.Locked("idempotency/" + request.Key, () => db.FindResponse(request.Key));
        if (stored is null || stored.CreatedAt <= options.Clock.GetUtcNow() - options.IdempotencyKeyLifetime) return null;
        if (stored.Scope != request.Scope || !stored.BodyHash.AsSpan().SequenceEqual(request.BodyHash))
            throw new ApiException(422, $"Idempotency-Key reused with a different request: key '{request.Key}' already answered {stored.Scope} with another body; use a new key for a new request",
                IdempotentRequest.Header, "idempotency_key_reused");
        return stored;
    }

    /// <summary>Inside the transaction of a state write: keeps its response under the request's key (when it has one) and forgets expired keys.</summary>
    public void Remember(StateDb db, IdempotentRequest? request, int status, byte[] body)
    {
        var now = options.Clock.GetUtcNow();
        db.ForgetResponses(now - options.IdempotencyKeyLifetime, ForgetPerWrite);
        if (request is not null) db.SaveResponse(request.Key, new StoredResponse(request.Scope, request.BodyHash, status, body, now));
    }

    /// <summary>Writes the stored response of a replay (with Idempotent-Replayed: true), else <paramref name="answer"/> as a 200.</summary>
    public static async Task WriteAsync(HttpContext ctx, StoredResponse? replay, byte[] answer)
    {
        ctx.Response.StatusCode = replay?.Status ?? StatusCodes.Status200OK;
        ctx.Response.ContentType = "application/json; charset=utf-8";
        if (replay is not null) ctx.Response.Headers[IdempotentRequest.ReplayedHeader] = "true";
        await ctx.Response.Body.WriteAsync(replay?.Body ?? answer, ctx.RequestAborted);
    }
}
