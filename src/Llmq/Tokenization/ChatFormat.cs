using System.Text;
using Llmq.Calibration;

namespace Llmq.Tokenization;

/// <summary>Renders a conversation to text the way the model was trained to see it, for the common template
/// families recognised in tokenizer_config's chat_template (ChatML as in Qwen, Llama 3 headers, Llama 2 /
/// Mistral [INST]); any other or missing template gets a plain "role: content" transcript. We do not run
/// Jinja: calibration only needs the right special-token scaffolding, not every template's corner cases.</summary>
public static class ChatFormat
{
    public static string Render(IReadOnlyList<ChatMessage> messages, string? chatTemplate, string? bosToken)
    {
        var text = new StringBuilder();
        if (chatTemplate?.Contains("<|im_start|>", StringComparison.Ordinal) == true)
        {
            foreach (var m in messages)
                text.Append("<|im_start|>").Append(m.Role).Append('\n').Append(m.Content).Append("<|im_end|>\n");
        }
        else if (chatTemplate?.Contains("<|start_header_id|>", StringComparison.Ordinal) == true)
        {
            text.Append(bosToken);
            foreach (var m in messages)
                text.Append("<|start_header_id|>").Append(m.Role).Append("<|end_header_id|>\n\n").Append(m.Content.Trim()).Append("<|eot_id|>");
        }
        else if (chatTemplate?.Contains("[INST]", StringComparison.Ordinal) == true)
        {
            // System prompts are folded into the first user turn, as Mistral's and Llama 2's templates do.
            string pendingSystem = "";
            foreach (var m in messages)
            {
                if (m.Role == "system")
                    pendingSystem += m.Content + "\n\n";
                else if (m.Role == "user")
                {
                    text.Append("[INST] ").Append(pendingSystem).Append(m.Content.Trim()).Append(" [/INST]");
                    pendingSystem = "";
                }
                else
                    text.Append(' ').Append(m.Content.Trim()).Append("</s>");
            }
        }
        else
        {
            foreach (var m in messages)
                text.Append(m.Role).Append(": ").Append(m.Content).Append("\n\n");
        }
        return text.ToString();
    }
}
