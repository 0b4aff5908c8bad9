using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Mamba4.Autograd;
using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Tasks.Recommendation;
using Mamba4.Tensors;
using Microsoft.AspNetCore.Http;

namespace Mamba4.Server.Rec;

public sealed class RecommendRequest
{
    [JsonPropertyName("history")] public long[]? History { get; set; }
    [JsonPropertyName("k")] public int? K { get; set; }
    [JsonPropertyName("exclude")] public long[]? Exclude { get; set; }
    [JsonPropertyName("exclude_history")] public bool? ExcludeHistory { get; set; }
}

public sealed class EventsRequest
{
    [JsonPropertyName("items")] public long[]? Items { get; set; }
}

public sealed record ScoredItem([property: JsonPropertyName("item")] long Item, [property: JsonPropertyName("score")] float Score);

/// <summary>
/// Recommendation over a sequential recommender: a stateless top-k over a given history (the parallel forward), and,
/// for a Mamba4Rec model, per-user states that each event advances by one O(1) <see cref="Mamba4Rec.Step"/>, stored in SQLite or PostgreSQL.
/// Model calls hold the model's monitor; a user's read-advance-commit holds one async lock (the store is
/// single-threaded) and runs in one transaction holding the user's write lock in the database (two event batches
/// of a user must not interleave, from this replica or another on the same database).
/// </summary>
public sealed class RecService : IDisposable
{
    private readonly ServerOptions _options;
    private readonly ServerMetrics _metrics;
    private readonly IdempotencyKeys _keys;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly int _stateFloats;

    public RecService(ISequentialRecommender model, string version, UserStateStore store, ServerOptions options, ServerMetrics metrics, int? window = null)
    {
        Model = model;
        Window = window;
        Recurrent = model as Mamba4Rec;
        Version = version;
        Store = store;
        _options = options;
        _metrics = metrics;
        _keys = new IdempotencyKeys(options);
        if (Recurrent is null) return;
        using var probe = Recurrent.NewState(1);
        _stateFloats = (int)(probe.Bytes / sizeof(float));
    }

    public ISequentialRecommender Model { get; }
    /// <summary>The model as Mamba4Rec (the event API's recurrent step), or null: then only POST /v1/recommend is served.</summary>
    public Mamba4Rec? Recurrent { get; }
    /// <summary>The most recent items a position-embedding model looks at (its max_seq_length); null: the whole history.</summary>
    public int? Window { get; }
    public string Version { get; }
    public UserStateStore Store { get; }
    public int NItems => Model.NItems;
    private int MaxK => Math.Min(1000, NItems - 1);

    private void CheckItem(long item, string field)
    {
        if (item < 1 || item >= NItems) throw ApiException.BadRequest($"{field}: item id {item} is outside [1, {NItems - 1}] (0 is padding; the model has n_items = {NItems})", field.Split('[')[0]);
    }

    private int CheckK(int? k)
    {
        int v = k ?? 10;
        if (v < 1 || v > MaxK) throw ApiException.BadRequest($"k must be in [1, {MaxK}], got {v}", "k");
        return v;
    }

    private static string CheckUser(string? user) => ApiException.CheckId(user, "user");

    /// <summary>POST /v1/recommend: top-k after a given history (parallel forward), excluding items on request.</summary>
    public async Task RecommendAsync(HttpContext ctx)
    {
        var r = await JsonBody.ReadAsync<RecommendRequest>(ctx, _options.MaxRequestBytes);
        var history = r.History ?? throw ApiException.BadRequest("history is required: the user's item ids, oldest first", "history");
        if (history.Length == 0) throw ApiException.BadRequest("history is empty: it needs at least one item", "history");
        if (history.Length > _options.MaxHistory)
            throw ApiException.TooLarge($"history has {history.Length} items; the limit is {_options.MaxHistory} (--max-history); use the event API for longer histories", "history");
        for (int i = 0; i < history.Length; i++) CheckItem(history[i], $"history[{i}]");
        int k = CheckK(r.K);
        var exclude = Excluded(r.Exclude, r.ExcludeHistory == true ? history : null);
        float[] seqOutput;
        lock (Model)
        {
            using var noGrad = GradMode.NoGrad();
            using var scope = new TensorScope();
            var input = Window is int w && history.Length > w ? history[^w..] : history;
            seqOutput = Model.Forward(Tensor.From(input, 1, input.Length), Tensor.From([(long)input.Length], 1)).ToFloatArray();
        }
        var items = TopK(seqOutput, k, exclude);
        _metrics.RecRequest();
        await ctx.Response.WriteAsJsonAsync(new Dictionary<string, object> { ["items"] = items, ["length"] = history.Length, ["model_version"] = Version }, JsonBody.Output);
    }

    private HashSet<long> Excluded(long[]? exclude, long[]? history)
    {
        var set = new HashSet<long>();
        if (exclude is not null)
        {
            if (exclude.Length > NItems) throw ApiException.TooLarge($"exclude has {exclude.Length} items; the model has only {NItems - 1}", "exclude");
            for (int i = 0; i < exclude.Length; i++) { CheckItem(exclude[i], $"exclude[{i}]"); set.Add(exclude[i]); }
        }
        if (history is not null) set.UnionWith(history);
        return set;
    }

    /// <summary>The k best items by seq_output · item_embeddingᵀ, never the padding item 0 nor an excluded one; ties by lower id.</summary>
    public IReadOnlyList<ScoredItem> TopK(float[] seqOutput, int k, IReadOnlySet<long> exclude)
    {
        float[] scores;
        lock (Model)
        {
            using var noGrad = GradMode.NoGrad();
            using var scope = new TensorScope();
            scores = Model.Scores(Tensor.From(seqOutput, 1, seqOutput.Length)).ToFloatArray();
        }
        return RecRecommend.TopK(scores, k, exclude).Select(id => new ScoredItem(id, scores[id])).ToList();
    }

    /// <summary>
    /// POST /v1/users/{id}/events: appends interactions (one recurrent step each) and commits the new state before answering;
    /// with an Idempotency-Key, a retry gets the first answer and appends nothing.
    /// </summary>
    public async Task AppendEventsAsync(HttpContext ctx, string? id)
    {
        var user = CheckUser(id);
        var body = await JsonBody.ReadBytesAsync(ctx, _options.MaxRequestBytes);
        var idempotent = IdempotentRequest.Of(ctx, body);
        var r = JsonBody.Parse<EventsRequest>(body);
        var items = r.Items ?? throw ApiException.BadRequest("items is required: the new interactions' item ids, oldest first", "items");
        if (items.Length == 0) throw ApiException.BadRequest("items is empty: send at least one item id", "items");
        if (items.Length > 1024) throw ApiException.TooLarge($"items has {items.Length} ids; at most 1024 per request", "items");
        for (int i = 0; i < items.Length; i++) CheckItem(items[i], $"items[{i}]");
        StoredResponse? replay;
        byte[] answer = [];
        await _lock.WaitAsync(ctx.RequestAborted);
        try
        {
            (replay, answer) = Store.Locked(user, () =>
            {
                var stored = _keys.Replay(Store.Db, idempotent);
                return (stored, stored is null ? Append(user, items, idempotent) : []);
            });
        }
        finally { _lock.Release(); }
        if (replay is null) _metrics.RecEvents(items.Length);
        await IdempotencyKeys.WriteAsync(ctx, replay, answer);
    }

    /// <summary>Under the lock: advances the user's state and commits events, state and answer in one transaction; the answer.</summary>
    private byte[] Append(string user, long[] items, IdempotentRequest? idempotent)
    {
        var next = Advance(user, Current(user), items);
        if (!IsFinite(next))
            throw new ApiException(422, $"items: the state of user '{user}' would become non-finite (the model's float32 state overflows on these items); nothing was stored", "items", "non_finite_state");
        var answer = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["user"] = user, ["length"] = next.Length, ["added"] = items.Length, ["model_version"] = Version,
        }, JsonBody.Output);
        Store.Append(next, items, () => _keys.Remember(Store.Db, idempotent, StatusCodes.Status200OK, answer));
        return answer;
    }

    /// <summary>GET /v1/users/{id}/recommendations?k=10[&amp;exclude=1,2][&amp;exclude_history=true]: top-k from the stored state.</summary>
    public async Task UserRecommendationsAsync(HttpContext ctx, string? id)
    {
        var user = CheckUser(id);
        var q = ctx.Request.Query;
        foreach (var key in q.Keys)
            if (key is not ("k" or "exclude" or "exclude_history"))
                throw ApiException.BadRequest($"unknown query parameter '{key}'; allowed: k, exclude, exclude_history", key);
        int? k = null;
        if (q.TryGetValue("k", out var kText))
            k = int.TryParse(kText, NumberStyles.Integer, CultureInfo.InvariantCulture, out var kv) ? kv : throw ApiException.BadRequest($"k must be an integer, got '{kText}'", "k");
        int kk = CheckK(k);
        long[]? exclude = null;
        if (q.TryGetValue("exclude", out var exText))
        {
            try { exclude = exText.ToString().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => long.Parse(s, CultureInfo.InvariantCulture)).ToArray(); }
            catch (Exception e) when (e is FormatException or OverflowException) { throw ApiException.BadRequest($"exclude must be comma-separated item ids, got '{exText}'", "exclude"); }
        }
        bool excludeHistory = false;
        if (q.TryGetValue("exclude_history", out var ehText) && !bool.TryParse(ehText, out excludeHistory))
            throw ApiException.BadRequest($"exclude_history must be true or false, got '{ehText}'", "exclude_history");
        UserState state;
        long[]? history = null;
        await _lock.WaitAsync(ctx.RequestAborted);
        try
        {
            (state, history) = Store.Locked(user, () =>
            {
                var current = Current(user) ?? throw ApiException.NotFound($"unknown user '{user}': post events to /v1/users/{user}/events first");
                return (current, excludeHistory ? Store.Events(user) : null);
            });
        }
        finally { _lock.Release(); }
        var items = TopK(state.SeqOutput, kk, Excluded(exclude, history));
        _metrics.RecRequest();
        await ctx.Response.WriteAsJsonAsync(new Dictionary<string, object>
        {
            ["user"] = user, ["length"] = state.Length, ["items"] = items, ["model_version"] = Version,
        }, JsonBody.Output);
    }

    /// <summary>GET /v1/users/{id}: how many events the stored state covers.</summary>
    public async Task UserInfoAsync(HttpContext ctx, string? id)
    {
        var user = CheckUser(id);
        UserState state;
        await _lock.WaitAsync(ctx.RequestAborted);
        try { state = Store.Locked(user, () => Current(user)) ?? throw ApiException.NotFound($"unknown user '{user}'"); }
        finally { _lock.Release(); }
        await ctx.Response.WriteAsJsonAsync(new Dictionary<string, object>
        {
            ["user"] = user, ["length"] = state.Length, ["model_version"] = state.ModelVersion, ["updated_at"] = state.UpdatedAt,
        }, JsonBody.Output);
    }

    /// <summary>DELETE /v1/users/{id}: forgets the state and the events.</summary>
    public async Task DeleteUserAsync(HttpContext ctx, string? id)
    {
        var user = CheckUser(id);
        bool existed;
        await _lock.WaitAsync(ctx.RequestAborted);
        try { existed = Store.Delete(user); }
        finally { _lock.Release(); }
        if (!existed) throw ApiException.NotFound($"unknown user '{user}'");
        ctx.Response.StatusCode = StatusCodes.Status204NoContent;
    }

    /// <summary>
    /// The user's state for this checkpoint: stored, or recomputed from the event log when another checkpoint (or a damaged
    /// or non-finite row) wrote it. Null for an unknown user; 409 when even the recomputed state is not finite.
    /// </summary>
    private UserState? Current(string user)
    {
        var stored = Store.Get(user);
        if (stored is null) return null;
        if (stored.ModelVersion == Version && stored.State.Length == _stateFloats && stored.SeqOutput.Length == Recurrent!.Config.HiddenSize && IsFinite(stored))
            return stored;
        var events = Store.Events(user);
        if (events.Length == 0) return null;
        var recomputed = Advance(user, null, events);
        if (!IsFinite(recomputed))
            throw new ApiException(409, $"user '{user}' is unusable: its stored events lead to a non-finite state under this model; DELETE /v1/users/{user} to start it again", "id", "unusable_user");
        Store.Put(recomputed);
        return recomputed;
    }

    private static bool IsFinite(UserState s) => Array.TrueForAll(s.State, float.IsFinite) && Array.TrueForAll(s.SeqOutput, float.IsFinite);

    /// <summary>Runs <paramref name="items"/> through the recurrent step from <paramref name="from"/> (or a zero state).</summary>
    private UserState Advance(string user, UserState? from, IReadOnlyList<long> items)
    {
        using var noGrad = GradMode.NoGrad();
        using var scope = new TensorScope();
        using var state = Recurrent!.NewState(1);
        if (from is not null) state.Load(from.State);
        float[] seqOutput = [];
        lock (Model)
        {
            foreach (var item in items) seqOutput = Recurrent.Step(Tensor.From([item], 1), state).ToFloatArray();
        }
        return new UserState(user, Version, (from?.Length ?? 0) + items.Count, state.ToArray(), seqOutput, DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture));
    }

    public void Dispose()
    {
        Store.Dispose();
        _lock.Dispose();
        ((Mamba4.Nn.Module)Model).Dispose();
    }
}
