using Mamba4.Models;

namespace Mamba4.Tasks.Forecasting;

/// <summary>
/// The default sizes and training settings of each model kind (chosen on ETTh1's validation split, input 96,
/// horizon 96; see README "Forecasting"). Every value can be overridden on the command line.
/// </summary>
public static class ForecastDefaults
{
    public static ForecasterConfig Config(string model, int inputLength, int horizon, int variables, int timeFeatures) => model switch
    {
        "linear" => new ForecasterConfig
        {
            Model = "linear", InputLength = inputLength, Horizon = horizon, Variables = variables, TimeFeatures = 0, RevIn = false, MovingAverage = 25,
        },
        "transformer" => new ForecasterConfig
        {
            Model = "transformer", InputLength = inputLength, Horizon = horizon, Variables = variables, TimeFeatures = timeFeatures,
            Embedding = "variate", RevIn = true, DModel = 128, Layers = 2, Heads = 8, DFf = 128, Dropout = 0.1f,
        },
        "mamba" => new ForecasterConfig
        {
            Model = "mamba", InputLength = inputLength, Horizon = horizon, Variables = variables, TimeFeatures = timeFeatures,
            Embedding = "variate", RevIn = true, DModel = 128, Layers = 2, DState = 16, DConv = 2, Expand = 1, DFf = 128,
            Dropout = 0.1f, Bidirectional = true,
        },
        _ => throw new ArgumentException($"unknown model '{model}' (expected one of: {string.Join(", ", ForecasterConfig.Models)})"),
    };

    public static ForecastTrainOptions Training(string model) => model switch
    {
        "linear" => new ForecastTrainOptions { Epochs = 10, Batch = 32, LearningRate = 1e-3f, WarmupSteps = 0, WeightDecay = 0, Patience = 3 },
        "transformer" => new ForecastTrainOptions { Epochs = 10, Batch = 32, LearningRate = 3e-4f, WarmupSteps = 100, WeightDecay = 0, Patience = 3 },
        _ => new ForecastTrainOptions { Epochs = 10, Batch = 32, LearningRate = 3e-4f, WarmupSteps = 100, WeightDecay = 0, Patience = 3 },
    };
}
