using Llmq.Cli;

return await Commands.Root().Parse(args).InvokeAsync();
