using System.Security.Cryptography;

namespace Mamba4.Server;

/// <summary>A checkpoint's identity: stored user and series states computed with another one are recomputed, not reused.</summary>
public static class ModelVersion
{
    /// <summary>SHA-256 of the files (config and weights), 16 hex digits.</summary>
    public static string Of(IEnumerable<string> files)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        foreach (var file in files)
        {
            using var f = File.OpenRead(file);
            int n;
            while ((n = f.Read(buffer)) > 0) sha.AppendData(buffer, 0, n);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset())[..16];
    }
}
