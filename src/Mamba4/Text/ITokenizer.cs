namespace Mamba4.Text;

/// <summary>Text ↔ token ids.</summary>
public interface ITokenizer
{
    int VocabSize { get; }
    int[] Encode(string text);
    string Decode(IEnumerable<int> ids);
}
