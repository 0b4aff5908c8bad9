using System.Text.Json.Nodes;

namespace Mamba4.Tasks.Recommendation;

/// <summary>Full-ranking metrics of a saved model: test, and validation when the data has validation samples.</summary>
public sealed record RecEvalResult(string Kind, int TestUsers, int MaxLen, IReadOnlyDictionary<string, double> Test, IReadOnlyDictionary<string, double> Valid)
{
    public JsonObject ToJson()
    {
        var o = new JsonObject { ["model"] = Kind, ["users"] = TestUsers };
        foreach (var (k, v) in Test) o[k] = Math.Round(v, 6);
        foreach (var (k, v) in Valid) o["valid_" + k] = Math.Round(v, 6);
        return o;
    }
}
