using System.Text.Json;
using Forkd.Core;
using Microsoft.AspNetCore.Http;

namespace Forkd.Service.Api;

/// <summary>forkd's error bodies (<c>{"error": "…"}</c>) with Forkd's stable ErrorId and hint beside them.</summary>
public static class ApiErrors
{
    /// <summary>Key under which the error of a request is kept for the audit log.</summary>
    public const string ItemKey = "forkd.error";

    public static IResult Error(HttpContext context, int status, string errorId, string message, string? hint = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Items[ItemKey] = $"{errorId}: {message}";
        return Results.Json(new ErrorBody(message, errorId, hint), statusCode: status);
    }

    /// <summary>Maps an engine error onto forkd's status codes; failures on the engine side keep forkd's "op: …" prefix.</summary>
    public static IResult From(HttpContext context, ForkdException ex, string operation)
    {
        ArgumentNullException.ThrowIfNull(ex);
        var status = StatusOf(ex);
        var message = status >= 500 ? $"{operation}: {ex.Message}" : ex.Message;
        return Error(context, status, ex.ErrorId, message, ex.Hint);
    }

    public static int StatusOf(ForkdException ex)
    {
        ArgumentNullException.ThrowIfNull(ex);
        return ex.ErrorId switch
        {
            "ChildExited" => StatusCodes.Status409Conflict,
            _ => ex.Kind switch
            {
                ForkdErrorKind.InvalidArgument => StatusCodes.Status400BadRequest,
                ForkdErrorKind.NotFound => StatusCodes.Status404NotFound,
                ForkdErrorKind.AlreadyExists or ForkdErrorKind.InUse or ForkdErrorKind.InvalidData or ForkdErrorKind.NotSupported => StatusCodes.Status409Conflict,
                ForkdErrorKind.Timeout => StatusCodes.Status504GatewayTimeout,
                _ => StatusCodes.Status500InternalServerError,
            },
        };
    }

    /// <summary>
    /// Reads a JSON body the way forkd's extractor judged it: wrong content type 415, bad syntax 400, wrong
    /// shape 422, over the size limit 413. Returns the value or the error result.
    /// </summary>
    public static async Task<(T? Value, IResult? Error)> ReadJsonAsync<T>(HttpContext context) where T : class
    {
        ArgumentNullException.ThrowIfNull(context);
        var type = context.Request.ContentType;
        if (type is null || !type.Split(';')[0].Trim().Equals("application/json", StringComparison.OrdinalIgnoreCase))
        {
            return (null, Error(context, StatusCodes.Status415UnsupportedMediaType, "UnsupportedMediaType",
                "Expected request with `Content-Type: application/json`"));
        }

        JsonDocument document;
        try
        {
            document = await JsonDocument.ParseAsync(context.Request.Body, default, context.RequestAborted).ConfigureAwait(false);
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, Error(context, StatusCodes.Status413PayloadTooLarge, "RequestBodyTooLarge", "request body too large"));
        }
        catch (JsonException ex)
        {
            return (null, Error(context, StatusCodes.Status400BadRequest, "InvalidJson", $"Failed to parse the request body as JSON: {ex.Message}"));
        }

        using (document)
        {
            try
            {
                var value = document.RootElement.Deserialize<T>();
                return value is null
                    ? (null, Error(context, StatusCodes.Status422UnprocessableEntity, "InvalidRequestShape", "request body must be a JSON object"))
                    : (value, null);
            }
            catch (JsonException ex)
            {
                return (null, Error(context, StatusCodes.Status422UnprocessableEntity, "InvalidRequestShape",
                    $"Failed to deserialize the JSON body into the target type: {ex.Message}"));
            }
        }
    }
}
