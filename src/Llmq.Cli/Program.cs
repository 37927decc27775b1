using System.CommandLine;
using Llmq.Cli;

var root = new RootCommand("llmq — compress large language models after training (GPTQ, RTN, FP8, NVFP4, MXFP4) into compressed-tensors, GPTQ and GGUF checkpoints.");
foreach (var command in Commands.All())
    root.Subcommands.Add(command);
return await root.Parse(args).InvokeAsync();
