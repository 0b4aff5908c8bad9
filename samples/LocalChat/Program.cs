// A chat and an embedding with a local Mamba model through Microsoft.Extensions.AI, using the Mamba4 package.
//   dotnet run --project samples/LocalChat                 a tiny random model (a smoke test: its text is noise)
//   dotnet run --project samples/LocalChat -- MODEL_DIR    a model directory with tokenizer.json (e.g. state-spaces/mamba-130m-hf)
using Mamba4.AI;
using Mamba4.Models;
using Mamba4.Text;
using Microsoft.Extensions.AI;

MambaChatClient client;
if (args.Length > 0) client = MambaChatClient.FromDirectory(args[0]);
else
{
    var tokenizer = CharTokenizer.FromText("abcdefghijklmnopqrstuvwxyz .,:!?\n");
    var model = new MambaLM(new MambaConfig { DModel = 32, NLayer = 2, DState = 8, VocabSize = tokenizer.VocabSize }, seed: 1);
    client = new MambaChatClient(model, tokenizer, ownsModel: true);
}
using (client)
{
    IChatClient chat = client;
    var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 24 };
    var response = await chat.GetResponseAsync("hello, who are you?", options);
    Console.WriteLine($"reply: {response.Text.ReplaceLineEndings(" ")}");
    Console.WriteLine($"usage: {response.Usage?.InputTokenCount} prompt + {response.Usage?.OutputTokenCount} generated tokens, finish: {response.FinishReason}");

    Console.Write("streamed: ");
    await foreach (var update in chat.GetStreamingResponseAsync("hello again", options)) Console.Write(update.Text.ReplaceLineEndings(" "));
    Console.WriteLine();

    using var embedder = new MambaEmbeddingGenerator(client.Model, client.Tokenizer, EmbeddingPooling.Mean);
    var vectors = await embedder.GenerateAsync(["a short text", "another one"]);
    Console.WriteLine($"embeddings: {vectors.Count} × {vectors[0].Vector.Length} floats");
}
